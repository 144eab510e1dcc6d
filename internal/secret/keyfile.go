package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFileName is the master key file the embedded default keeps in its data
// directory when SLUICE_MASTER_KEY is not set.
const KeyFileName = "master.key"

// NextKeyFileName holds a new master key while a rotation is under way: it
// is written before the store is re-wrapped and renamed over KeyFileName
// after, so a crash in between loses no key.
const NextKeyFileName = "master.key.next"

// ReadKeyFile reads a master key file. It refuses a file that others can
// read, since anyone who reads it can open every secret in the store.
func ReadKeyFile(path string) (MasterKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return MasterKey{}, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return MasterKey{}, fmt.Errorf("master key file %s has mode %v: make it readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return MasterKey{}, err
	}
	mk, err := ParseMasterKey(string(b))
	if err != nil {
		return MasterKey{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	return mk, nil
}

// WriteKeyFile writes mk to path with mode 0600, durably and atomically: the
// key lands in a temporary file that is synced and then linked into place,
// so a crash never leaves a truncated key behind and an existing file is
// never overwritten.
func WriteKeyFile(path string, mk MasterKey) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(mk.Encode().Reveal() + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// LoadOrCreateKeyFile returns the master key in dir, creating it on first
// use. created reports whether a new key was made.
func LoadOrCreateKeyFile(dir string) (mk MasterKey, created bool, err error) {
	path := filepath.Join(dir, KeyFileName)
	mk, err = ReadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return mk, false, err
	}
	if mk, err = NewMasterKey(); err != nil {
		return MasterKey{}, false, err
	}
	if err := WriteKeyFile(path, mk); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			mk, err = ReadKeyFile(path)
			return mk, false, err
		}
		return MasterKey{}, false, fmt.Errorf("unable to create master key file: %w", err)
	}
	return mk, true, nil
}

// ReplaceKeyFile moves the key in NextKeyFileName over KeyFileName in dir.
func ReplaceKeyFile(dir string) error {
	if err := os.Rename(filepath.Join(dir, NextKeyFileName), filepath.Join(dir, KeyFileName)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
