package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// followPoll is how often a followed log is checked for new lines.
const followPoll = 200 * time.Millisecond

// Logs returns the last tail lines of the runtime's replica logs, merged in
// time order (tail < 0: all that is kept, tail 0: none), and with follow
// keeps streaming the lines replicas write until ctx ends or the reader is
// closed. Each replica slot has one log file that its processes of every
// generation append to, so a rollout or a restart does not lose history.
// A runtime without a directory answers an error wrapping fs.ErrNotExist.
func (b *Backend) Logs(ctx context.Context, k orchestrator.Key, tail int, follow bool) (io.ReadCloser, error) {
	r, err := b.get(ctx, k, false)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("local: runtime %s: %w", k, fs.ErrNotExist)
	}
	logDir := filepath.Join(r.dir, "logs")
	offsets := map[string]int64{}
	var lines []logLine
	for _, path := range replicaLogs(logDir) {
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		offsets[path] = fi.Size()
		if tail == 0 {
			continue
		}
		ls, err := lastLines(path, fi.Size(), tail)
		if err != nil {
			return nil, err
		}
		lines = append(lines, ls...)
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	if tail > 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	var head bytes.Buffer
	for _, l := range lines {
		head.WriteString(l.text)
		head.WriteByte('\n')
	}
	if !follow {
		return io.NopCloser(&head), nil
	}
	// The follower ends when ctx ends or the reader is closed, whichever
	// comes first; it does not wait for a next line to notice.
	fctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		if _, err := pw.Write(head.Bytes()); err != nil {
			return
		}
		pw.CloseWithError(followLogs(fctx, logDir, offsets, pw))
	}()
	context.AfterFunc(fctx, func() { pr.CloseWithError(ctx.Err()) })
	return &followReader{PipeReader: pr, cancel: cancel}, nil
}

type followReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (f *followReader) Close() error {
	f.cancel()
	return f.PipeReader.Close()
}

// replicaLogs lists the current log files of a runtime, by slot.
func replicaLogs(logDir string) []string {
	paths, _ := filepath.Glob(filepath.Join(logDir, "replica-*.log"))
	sort.Strings(paths)
	return paths
}

type logLine struct {
	at   time.Time
	text string
}

// lastLines reads the last n lines (n < 0: all) of a replica's log (its
// rotated .1 file first, when the current one holds fewer), each with the
// time it carries, so the replicas' lines can be merged.
func lastLines(path string, size int64, n int) ([]logLine, error) {
	data, err := readTail(path, size, n)
	if err != nil {
		return nil, err
	}
	if n < 0 || bytes.Count(data, []byte{'\n'}) < n {
		if fi, err := os.Stat(path + ".1"); err == nil {
			old, err := readTail(path+".1", fi.Size(), n)
			if err == nil {
				data = append(old, data...)
			}
		}
	}
	text := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if n >= 0 && len(text) > n {
		text = text[len(text)-n:]
	}
	out := make([]logLine, 0, len(text))
	var at time.Time
	for _, t := range text {
		if t == "" {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(t), &rec) == nil && !rec.Time.IsZero() {
			at = rec.Time
		}
		// A line without a time (a panic's stack) sorts with the line
		// before it.
		out = append(out, logLine{at: at, text: t})
	}
	return out, nil
}

// readTail reads whole lines from the end of a file up to size: the last n
// of them at least (n < 0: the whole file), by chunks from the end.
func readTail(path string, size int64, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("local: reading log: %w", err)
	}
	defer f.Close()
	const chunk = 64 << 10
	start := size
	for start > 0 {
		start = max(0, start-chunk)
		if n < 0 {
			continue
		}
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
			return nil, fmt.Errorf("local: reading log: %w", err)
		}
		if bytes.Count(buf, []byte{'\n'}) > n {
			break
		}
	}
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return nil, fmt.Errorf("local: reading log: %w", err)
	}
	// A partial last line (being written) is left for later; a partial
	// first line (cut by the chunk) is dropped.
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	} else {
		buf = nil
	}
	if start > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return buf, nil
}

// followLogs streams what replicas append to their logs from offsets on,
// whole lines only; a file that shrank was rotated and is read from its
// start; a replica log that appears (a scale up) is followed too.
func followLogs(ctx context.Context, logDir string, offsets map[string]int64, w io.Writer) error {
	partial := map[string][]byte{}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for _, path := range replicaLogs(logDir) {
			fi, err := os.Stat(path)
			if err != nil {
				continue
			}
			off := offsets[path]
			if fi.Size() < off {
				off = 0
				partial[path] = nil
			}
			if fi.Size() == off {
				continue
			}
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			buf := make([]byte, fi.Size()-off)
			n, _ := f.ReadAt(buf, off)
			f.Close()
			offsets[path] = off + int64(n)
			data := append(partial[path], buf[:n]...)
			i := bytes.LastIndexByte(data, '\n')
			if i < 0 {
				partial[path] = data
				continue
			}
			partial[path] = append([]byte(nil), data[i+1:]...)
			if _, err := w.Write(data[:i+1]); err != nil {
				return nil // the reader went away
			}
		}
		if _, err := os.Stat(logDir); err != nil {
			return nil // the runtime was deleted
		}
	}
}

// lastLoggedError finds the last error a replica logged since it started
// (from offset on): the message and err of a JSON record at level ERROR,
// or the CLI's "sluice: …" line, or a panic. "" when it logged none, e.g.
// when it was killed.
func lastLoggedError(path string, offset int64) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	size := fi.Size()
	if offset > size {
		offset = 0 // rotated since
	}
	offset = max(offset, size-64<<10)
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, size-offset)
	n, _ := f.ReadAt(buf, offset)
	lines := strings.Split(string(buf[:n]), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "{"):
			var rec struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
				Err   any    `json:"err"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Level != "ERROR" {
				continue
			}
			if rec.Err != nil {
				return fmt.Sprintf("%s: %v", rec.Msg, rec.Err)
			}
			return rec.Msg
		case strings.HasPrefix(line, "sluice: "):
			return strings.TrimPrefix(line, "sluice: ")
		case strings.HasPrefix(line, "panic:"), strings.HasPrefix(line, "fatal error:"):
			return line
		}
	}
	return ""
}

// capLogs rotates replica logs that outgrew the cap. The runtimes hold
// their log open in append mode, so the file is copied to .1 and then
// truncated in place (lines written in between are lost, a fair price
// for never having to signal a runtime to reopen its log).
func (r *runtimeState) capLogs() {
	for _, path := range replicaLogs(filepath.Join(r.dir, "logs")) {
		fi, err := os.Stat(path)
		if err != nil || fi.Size() <= r.b.opts.MaxLogBytes {
			continue
		}
		if err := rotate(path); err != nil {
			r.b.log.Warn("rotating replica log failed", "runtime", r.key.String(), "log", filepath.Base(path), "err", err)
			continue
		}
		r.b.log.Info("replica log rotated", "runtime", r.key.String(), "log", filepath.Base(path), "bytes", fi.Size())
	}
}

func rotate(path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rotate-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path+".1")
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Truncate(path, 0)
}
