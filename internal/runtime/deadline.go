package runtime

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/obs"
)

// runCtx is a flow run's context: its parent's values and cancellation
// plus the flow's deadline, like context.WithDeadline, but without a timer
// or a goroutine-visible channel until someone asks for Done. A run of
// local steps (map, set, validate, reply…) only ever asks Err, between
// steps, and a request through such a flow then costs no timer and no
// extra allocation beyond this one; gojq, an http step or the abandon
// wait ask Done, and get a channel closed at the deadline as
// context.WithDeadline would close it.
//
// Err follows the time: once the deadline has passed it reports
// context.DeadlineExceeded (closing Done, if made), so the checks between
// steps see the deadline even though no timer fired.
type runCtx struct {
	parent   context.Context
	deadline time.Time
	done     atomic.Pointer[chan struct{}]

	// idPrefix and idSeq make the run's request id (obs.RequestID) when
	// something asks for it — a log line: a message run's id is built
	// only then, and no context.WithValue layer carries it. idSeq 0: the
	// parent's id.
	idPrefix string
	idSeq    uint64

	mu    sync.Mutex
	err   error
	timer *time.Timer // set once Done was asked
	stop  func() bool // stops the parent's AfterFunc
}

func newRunCtx(parent context.Context, timeout time.Duration) *runCtx {
	c := new(runCtx)
	c.init(parent, timeout)
	return c
}

// init readies a zero runCtx (one inside a requestCtx) for a run that may
// take timeout from now.
func (c *runCtx) init(parent context.Context, timeout time.Duration) {
	c.parent, c.deadline = parent, time.Now().Add(timeout)
}

// requestCtx is an HTTP flow request's context — the caller's, with its
// trace, carrying the request id (obs.RequestID) — and the context of the
// request's run beside it: one allocation for what was a WithValue layer,
// the id boxed for it and a runCtx. The run's context has this one as its
// parent; the request's outlives the run (its errors are logged with it
// after the run's context is released).
type requestCtx struct {
	context.Context
	id  string
	run runCtx
}

func newRequestCtx(parent context.Context, id string) *requestCtx {
	return &requestCtx{Context: parent, id: id}
}

func (c *requestCtx) Value(key any) any {
	if obs.IsRequestIDKey(key) {
		return c.id
	}
	return c.Context.Value(key)
}

// runCtx readies and returns the context of the request's run, which may
// take timeout from now; it is used once.
func (c *requestCtx) runCtx(timeout time.Duration) *runCtx {
	c.run.init(c, timeout)
	return &c.run
}

func (c *runCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *runCtx) Value(key any) any {
	if c.idSeq != 0 && obs.IsRequestIDKey(key) {
		return c.requestID()
	}
	return c.parent.Value(key)
}

// requestID is the id of a message run: the runtime's prefix, m, the
// sequence number.
func (c *runCtx) requestID() string {
	return messageRequestID(c.idPrefix, c.idSeq)
}

func messageRequestID(prefix string, seq uint64) string {
	var buf [64]byte
	return string(strconv.AppendUint(append(append(buf[:0], prefix...), 'm'), seq, 10))
}

func (c *runCtx) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.parent.Err(); err != nil {
		c.cancel(err)
	} else if !time.Now().Before(c.deadline) {
		c.cancel(context.DeadlineExceeded)
	} else {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done makes the channel on first use, with a timer for the deadline and
// a watch on the parent; later calls (gojq asks before every instruction)
// are one atomic load.
func (c *runCtx) Done() <-chan struct{} {
	if d := c.done.Load(); d != nil {
		return *d
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.done.Load(); d != nil {
		return *d
	}
	d := make(chan struct{})
	c.done.Store(&d)
	if c.err != nil {
		close(d)
		return d
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	c.stop = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	return d
}

// cancel ends the context with err unless it ended already.
func (c *runCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if d := c.done.Load(); d != nil {
		close(*d)
	}
}

// release frees the timer and the parent's watch, if Done made them, and
// ends the context, as the cancel function of context.WithDeadline does.
func (c *runCtx) release() {
	c.mu.Lock()
	t, stop := c.timer, c.stop
	c.mu.Unlock()
	if t != nil {
		t.Stop()
		stop()
	}
	c.cancel(context.Canceled)
}
