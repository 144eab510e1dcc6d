// Package fileconn is the file trigger: it polls a directory for files
// matching a glob, claims each one by an atomic rename into processing/
// (so of several runtimes sharing the directory exactly one gets it),
// runs the flow on its content, and moves it to done/ or, after the last
// failed attempt, to failed/ with the error beside it (<name>.error).
package fileconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/flow"
)

// The directories the trigger keeps inside the watched one.
const (
	Processing = "processing"
	Done       = "done"
	Failed     = "failed"
)

// maxFile bounds a file read into a message.
const maxFile = 16 << 20

// Consumer watches one trigger's directory.
type Consumer struct {
	t   *flow.FileTrigger
	dir string
	ref string
	h   connectors.Handler
	cnt connectors.Counters
	log *slog.Logger
	ctx context.Context
	// Stale is how old a claim in processing/ must be before it is
	// taken as left by a runtime that died, and put back.
	Stale time.Duration

	work   *connectors.Workers[string] // claims and runs a file by name
	stopCh chan struct{}
	done   chan struct{}
}

// Dir returns the directory of a file connection.
func Dir(c *flow.Connection) (string, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "file" {
		return "", fmt.Errorf("policy %s: not a file URL", c.Name)
	}
	return filepath.FromSlash(u.Path), nil
}

// Start creates the trigger's directories and polls in the background.
// stale is the age past which a claimed file is given back (longer
// than the flow's timeout).
func Start(ctx context.Context, t *flow.FileTrigger, ref string, stale time.Duration, h connectors.Handler, cnt connectors.Counters, log *slog.Logger) (*Consumer, error) {
	dir, err := Dir(t.Connection)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{Processing, Done, Failed} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("file trigger: %w", err)
		}
	}
	if cnt == nil {
		cnt = connectors.NopCounters{}
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Consumer{t: t, dir: dir, ref: ref, h: h, cnt: cnt, ctx: ctx, Stale: stale, log: log.With("flow", ref, "dir", dir),
		stopCh: make(chan struct{}), done: make(chan struct{})}
	// Draining stops the workers taking files; the ones they hold finish.
	c.work = connectors.NewWorkers(t.MaxInFlight, c.stopCh, c.claim)
	go c.loop()
	return c, nil
}

func (c *Consumer) loop() {
	defer close(c.done)
	tick := time.NewTicker(c.t.Poll)
	defer tick.Stop()
	for {
		c.recover()
		c.scan()
		select {
		case <-c.stopCh:
			return
		case <-tick.C:
		}
	}
}

// scan claims and runs the matching files, oldest name first.
func (c *Consumer) scan() {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		c.log.Warn("cannot list the directory", "err", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
			continue
		}
		if ok, _ := path.Match(c.t.Glob, name); !ok {
			continue
		}
		// Handed to a worker once one is free, which claims it: no more
		// files are claimed than can run.
		if !c.work.Dispatch(name) {
			return
		}
	}
}

// claim takes the file from the directory and runs it; a file another
// runtime took first is left to it.
func (c *Consumer) claim(name string) {
	claimed := filepath.Join(c.dir, Processing, name)
	// The claim: of all runtimes renaming this file, one succeeds.
	if err := os.Rename(filepath.Join(c.dir, name), claimed); err != nil {
		return
	}
	now := time.Now()
	os.Chtimes(claimed, now, now) // the claim's age, for recover
	c.cnt.InFlight(1)
	defer c.cnt.InFlight(-1)
	c.handle(name, claimed)
}

// recover puts back files claimed longer ago than Stale: their runtime
// died mid-flow (at least once: they run again).
func (c *Consumer) recover() {
	entries, err := os.ReadDir(filepath.Join(c.dir, Processing))
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || time.Since(info.ModTime()) < c.Stale {
			continue
		}
		if os.Rename(filepath.Join(c.dir, Processing, e.Name()), filepath.Join(c.dir, e.Name())) == nil {
			c.log.Warn("file claimed by a runtime that did not finish it; processing it again", "file", e.Name())
		}
	}
}

func (c *Consumer) handle(name, claimed string) {
	c.cnt.Received()
	data, err := readFile(claimed)
	if err != nil {
		c.finish(name, claimed, Failed, 1, err)
		return
	}
	body, enc := connectors.Body(data)
	for attempt := 1; ; attempt++ {
		src := map[string]any{"kind": "file", "name": name, "dir": c.dir, "size": len(data), "delivered": attempt}
		if enc == "base64" {
			src["encoding"] = "base64"
		}
		_, err = c.h(c.ctx, &flow.Message{Body: body, Headers: map[string]string{}, Source: src})
		if err == nil {
			c.finish(name, claimed, Done, attempt, nil)
			return
		}
		if attempt >= c.t.Attempts {
			c.finish(name, claimed, Failed, attempt, err)
			return
		}
		c.cnt.Retried()
		t := time.NewTimer(c.t.BackoffFor(attempt))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return // left in processing/: given back once stale
		}
	}
}

func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("file larger than %d bytes", maxFile)
	}
	return data, nil
}

// finish moves a claimed file to done/ or failed/ — a name already
// there gets a numbered suffix, so nothing is overwritten — and writes
// the error of a failed one next to it.
func (c *Consumer) finish(name, claimed, to string, attempts int, cause error) {
	target := filepath.Join(c.dir, to, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = filepath.Join(c.dir, to, fmt.Sprintf("%s.%d", name, i))
	}
	if cause != nil {
		msg := fmt.Sprintf("flow %s failed after %d attempts: %s\n", c.ref, attempts, cause)
		if err := os.WriteFile(target+".error", []byte(msg), 0o640); err != nil {
			c.log.Warn("cannot write the error file", "err", err)
		}
	}
	if err := os.Rename(claimed, target); err != nil {
		c.log.Error("cannot move the file out of processing/", "file", name, "err", err)
		return
	}
	if cause != nil {
		c.log.Warn("file failed", "file", name, "attempts", attempts, "err", cause)
		c.cnt.DeadLettered()
	} else {
		c.cnt.Acked()
	}
}

// Drain stops polling and waits for the files in flight.
func (c *Consumer) Drain(ctx context.Context) error {
	select {
	case <-c.stopCh:
	default:
		close(c.stopCh)
	}
	done := make(chan struct{})
	go func() { <-c.done; c.work.Close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
