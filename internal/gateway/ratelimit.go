package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// window counts one app's calls through one plan in a fixed window.
type window struct {
	mu    sync.Mutex
	start time.Time
	span  time.Duration
	count int
}

// sweepEvery is how many new windows are made between sweeps of idle ones.
const sweepEvery = 4096

// allow counts a call of app through plan and refuses it with a 429 when
// the plan's per-app limit is used up. A refused call is not counted, so
// retrying early does not push the reset back. Counts are per replica.
func allow(w *window, p *Plan, now time.Time) *Refusal {
	lim := p.RateLimit
	if lim.Requests == 0 {
		return nil
	}
	span := time.Duration(lim.Window)
	w.mu.Lock()
	if now.Sub(w.start) >= span || now.Before(w.start) {
		w.start, w.count = now, 0
	}
	w.span = span
	over := w.count >= lim.Requests
	if !over {
		w.count++
	}
	remaining := lim.Requests - w.count
	reset := int((w.start.Add(span).Sub(now) + time.Second - 1) / time.Second)
	w.mu.Unlock()
	if reset < 1 {
		reset = 1
	}
	if !over {
		return nil
	}
	return &Refusal{Status: http.StatusTooManyRequests,
		Message: fmt.Sprintf("app has used its %d calls per %s of plan %s", lim.Requests, span, p.Name),
		Header: http.Header{
			"Retry-After":      {strconv.Itoa(reset)},
			"Ratelimit-Policy": {fmt.Sprintf(`"%s";q=%d;w=%d`, p.Name, lim.Requests, int(span/time.Second))},
			"Ratelimit":        {fmt.Sprintf(`"%s";r=%d;t=%d`, p.Name, remaining, reset)},
		}}
}

// window returns the counter of app's calls through plan, the same one
// across states so that a new state does not reset anybody's quota.
func (g *Gateway) window(appID, planID string) *window {
	key := appID + "\x00" + planID
	if v, ok := g.windows.Load(key); ok {
		return v.(*window)
	}
	v, loaded := g.windows.LoadOrStore(key, &window{})
	if !loaded && g.sweeps.Add(1)%sweepEvery == 0 {
		g.sweep(g.now.Now())
	}
	return v.(*window)
}

// sweep forgets windows that ended more than an hour ago, so apps that
// stopped calling do not hold memory.
func (g *Gateway) sweep(now time.Time) {
	g.windows.Range(func(k, v any) bool {
		w := v.(*window)
		w.mu.Lock()
		idle := now.Sub(w.start) > w.span+time.Hour
		w.mu.Unlock()
		if idle {
			g.windows.Delete(k)
		}
		return true
	})
}
