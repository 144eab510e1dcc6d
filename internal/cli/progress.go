package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/client"
)

// progressThreshold is the size from which transfers show a progress bar
// on a terminal without --progress: smaller ones are over too soon to
// need one.
const progressThreshold = 1 << 20

// progressBar draws the progress of an upload or download on standard
// error. On a terminal it redraws one line (at most ten times a second);
// elsewhere (with --progress into a file or pipe) it writes a line at each
// tenth of the way, so logs stay readable.
type progressBar struct {
	w     io.Writer
	label string
	tty   bool
	after string // said once everything is sent, e.g. "validating"

	mu      sync.Mutex
	start   time.Time
	drawn   time.Time
	step    int // last tenth written when not on a terminal
	done    int64
	total   int64
	started bool
	ended   bool
}

// newProgressBar returns a bar for a transfer of total bytes (-1 when
// unknown), or nil when none is to be shown: forced with --progress, else
// only on a terminal and for large transfers.
func newProgressBar(cmd *cobra.Command, force bool, label string, total int64) *progressBar {
	w := cmd.ErrOrStderr()
	tty := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	if !force && (!tty || (total >= 0 && total < progressThreshold)) {
		return nil
	}
	return &progressBar{w: w, label: label, tty: tty, total: total, step: -1}
}

// update is the client.Progress of the bar; nil when there is no bar.
func (p *progressBar) update() client.Progress {
	if p == nil {
		return nil
	}
	return func(done, total int64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.ended {
			return
		}
		now := time.Now()
		if !p.started {
			p.started, p.start = true, now
		}
		p.done, p.total = done, total
		complete := total >= 0 && done >= total
		if p.tty {
			if complete || now.Sub(p.drawn) >= 100*time.Millisecond {
				p.drawn = now
				fmt.Fprint(p.w, "\r"+p.line(now, complete)+"\x1b[K")
			}
			return
		}
		step := 0
		if total > 0 {
			step = int(done * 10 / total)
		}
		if step > p.step {
			p.step = step
			fmt.Fprintln(p.w, p.line(now, complete))
		}
	}
}

// finish ends the bar's line. ok tells whether the transfer succeeded.
func (p *progressBar) finish(ok bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	if !p.started {
		return
	}
	now := time.Now()
	if p.tty {
		if ok {
			p.total = p.done
			p.after = ""
			fmt.Fprint(p.w, "\r"+p.line(now, true)+"\x1b[K")
		}
		fmt.Fprintln(p.w)
		return
	}
	if ok && p.total < 0 {
		p.total = p.done
		fmt.Fprintln(p.w, p.line(now, true))
	}
}

// line is the bar's text: label, bar, percentage, bytes and rate.
func (p *progressBar) line(now time.Time, complete bool) string {
	const width = 24
	var b strings.Builder
	b.WriteString(p.label)
	if p.total > 0 {
		frac := float64(p.done) / float64(p.total)
		frac = min(frac, 1)
		fill := int(frac * width)
		b.WriteString(" [" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "]")
		fmt.Fprintf(&b, " %3d%%  %s / %s", int(frac*100), byteSize(p.done), byteSize(p.total))
	} else {
		fmt.Fprintf(&b, "  %s", byteSize(p.done))
	}
	if secs := now.Sub(p.start).Seconds(); secs > 0.05 {
		fmt.Fprintf(&b, "  %s/s", byteSize(int64(float64(p.done)/secs)))
	}
	if complete && p.after != "" {
		b.WriteString("  " + p.after)
	}
	return b.String()
}

// byteSize writes n bytes in binary units, e.g. "12.3 MiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// lazyProgress is a progress bar for a download, whose size is only known
// once the answer arrives: whether to show one is decided on the first
// report.
type lazyProgress struct {
	cmd     *cobra.Command
	force   bool
	label   string
	decided bool
	bar     *progressBar
	report  client.Progress
}

// update is a client.Progress.
func (l *lazyProgress) update(done, total int64) {
	if !l.decided {
		l.decided = true
		l.bar = newProgressBar(l.cmd, l.force, l.label, total)
		l.report = l.bar.update()
	}
	if l.report != nil {
		l.report(done, total)
	}
}

// finish ends the bar's line, if one is shown.
func (l *lazyProgress) finish(ok bool) { l.bar.finish(ok) }
