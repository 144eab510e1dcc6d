package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	stateFile    = "state.json"
	stateVersion = 1
)

// state is what a runtime's directory records about it, so that a control
// plane started later finds its processes, its port and its history. It
// holds no configuration data.
type state struct {
	Version    int    `json:"version"`
	InstanceID string `json:"instanceId"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	// Port is the runtime's flow port, kept for its whole life (across
	// generations, replicas 0 and control-plane restarts) so that its
	// endpoints do not move.
	Port      int    `json:"port"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"lastError,omitempty"`
	// Replicas and Target are the desired state last applied; the
	// supervisor keeps driving to them without the control plane.
	Replicas int    `json:"replicas"`
	Target   string `json:"target,omitempty"` // directory of the target generation; "" when stopped
	Gens     []*gen `json:"generations,omitempty"`
}

// gen is one materialised generation and its processes.
type gen struct {
	Dir        string   `json:"dir"` // under the runtime's directory, e.g. gen-3-1a2b3c4d
	Generation int64    `json:"generation"`
	Hash       string   `json:"hash"` // of the BARs and configurations it was made from
	BARs       []string `json:"bars"` // file names under bars/, in the order given
	// Bundle, when set, is the URL its replicas fetch their BARs and
	// configurations from (with the token in bundle.token) instead of the
	// bars/ and config/ directories.
	Bundle string `json:"bundle,omitempty"`
	// BundleCA: the bundle URL is https, and bundle-ca.pem holds the
	// control plane's certificate the replicas trust.
	BundleCA bool `json:"bundleCA,omitempty"`
	// TLS: a keystore configuration makes its replicas serve HTTPS.
	TLS      bool `json:"tls,omitempty"`
	Replicas int  `json:"replicas"`
	// Retiring is set once a newer generation is ready: its processes are
	// told to drain and its directory goes when they are gone.
	Retiring bool `json:"retiring,omitempty"`
	// Served is set once one of its replicas was ready: a generation that
	// never served is retired as soon as a newer one is the target.
	Served  bool               `json:"served,omitempty"`
	Procs   []*proc            `json:"processes,omitempty"`
	Backoff map[int]*slotRetry `json:"backoff,omitempty"` // by replica slot
}

// proc is one replica process.
type proc struct {
	Slot      int       `json:"slot"`
	PID       int       `json:"pid"`
	AdminPort int       `json:"adminPort"`
	StartTime uint64    `json:"startTime"` // /proc/<pid>/stat field 22: tells a reused pid apart
	StartedAt time.Time `json:"startedAt"` // by the backend's clock
	LogOffset int64     `json:"logOffset"` // size of its log file when it started
	Stopping  bool      `json:"stopping,omitempty"`
	StopSent  time.Time `json:"stopSent,omitzero"` // wall clock, for the kill deadline
}

// slotRetry is the backoff of one replica slot after crashes.
type slotRetry struct {
	Failures  int       `json:"failures"`          // crashes in a row
	NotBefore time.Time `json:"notBefore"`         // by the backend's clock
	Pending   bool      `json:"pending,omitempty"` // crashed, not restarted yet
	// StartFailed: the last attempt could not start a process at all (the
	// binary or the port), as opposed to a process that ran and crashed.
	StartFailed bool `json:"startFailed,omitempty"`
}

func (st *state) processCount() int {
	n := 0
	for _, g := range st.Gens {
		n += len(g.Procs)
	}
	return n
}

func (st *state) gen(dir string) *gen {
	for _, g := range st.Gens {
		if g.Dir == dir {
			return g
		}
	}
	return nil
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("local: reading state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("local: state file %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("local: state file %s: unknown version %d", filepath.Join(dir, stateFile), st.Version)
	}
	return &st, nil
}

// writeState replaces the state file atomically: a control plane killed
// mid-write leaves the previous state, never half of one.
func writeState(dir string, st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("local: encoding state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("local: writing state: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, stateFile))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("local: writing state: %w", werr)
	}
	return nil
}
