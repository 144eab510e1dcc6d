package iam

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/store"
)

// Limit is a quota of Requests per Window. A zero Limit does not limit.
type Limit struct {
	Requests int
	Window   time.Duration
}

// ParseLimit reads "N/DURATION" (e.g. "600/1m"), or "0"/"off" for no limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "off" || s == "" {
		return Limit{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	req, err := strconv.Atoi(n)
	if !ok || err != nil || req < 1 {
		return Limit{}, fmt.Errorf("rate limit %q is not N/DURATION such as 600/1m (or off)", s)
	}
	d, err := time.ParseDuration(w)
	if err != nil || d < time.Second || d%time.Second != 0 {
		return Limit{}, fmt.Errorf("rate limit %q: the window must be whole seconds, at least 1s, such as 1m", s)
	}
	return Limit{Requests: req, Window: d}, nil
}

func (l Limit) String() string {
	if l.Requests == 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", l.Requests, l.Window)
}

// Quota is where one caller stands against one policy, for the
// RateLimit and RateLimit-Policy headers (IETF httpapi ratelimit-headers
// draft): Policy names it, Limit is its quota, Remaining what is left in
// this window, Reset the seconds until the window ends.
type Quota struct {
	Policy    string
	Limit     Limit
	Remaining int
	Reset     int
}

// RateLimiter counts requests per client id and per instance in fixed
// windows. Without Shared the counts live in this process (SQLite: one
// control plane). With Shared (PostgreSQL: several replicas) the limits
// hold across replicas: see shared for how, and for the tolerance.
type RateLimiter struct {
	PerClient   Limit
	PerInstance Limit
	// PerSource limits unauthenticated and failed attempts per source
	// address; only authenticated traffic draws on a client's or an
	// instance's quota, so nobody can spend someone else's by presenting
	// their ids.
	PerSource Limit
	Now       clock.Func
	// OnRefuse is told the policy ("client", "instance" or "source") of
	// every request refused; nil: nobody is told.
	OnRefuse func(policy string)
	// Shared holds the counts every replica sees; nil: this process
	// counts alone.
	Shared store.RateWindows
	// OnSharedError is told when Shared could not be reached and the
	// request was counted in this process only; nil: nobody is told.
	OnSharedError func(error)

	mu      sync.Mutex
	windows map[string]*window
	sweep   time.Time
	leases  map[string]*lease
	swept   time.Time // when leases were last swept
}

type window struct {
	start time.Time
	count int
}

func (rl *RateLimiter) now() time.Time { return rl.Now.Now() }

// Allow counts one request of clientID in instanceID (either may be ""
// when unknown) and reports whether it is within every limit, with the
// quotas for the response headers. A refused request is not counted, so a
// client that keeps retrying early does not push its own reset back.
func (rl *RateLimiter) Allow(clientID, instanceID string) (bool, []Quota) {
	// At most two checks, in an array the calls below do not keep, so
	// counting an authenticated request allocates only its quotas.
	var arr [2]check
	checks := arr[:0]
	if rl.PerClient.Requests > 0 && clientID != "" {
		c := check{policy: "client", prefix: "c\x00", id: clientID, limit: rl.PerClient}
		if clientID == ToolkitClientID {
			// The toolkit client is public and every instance's: each
			// instance gets a quota of its own, so one tenant's scripts
			// cannot use up another's.
			c.instance = instanceID
		}
		checks = append(checks, c)
	}
	if rl.PerInstance.Requests > 0 && instanceID != "" {
		checks = append(checks, check{policy: "instance", prefix: "i\x00", id: instanceID, limit: rl.PerInstance})
	}
	return rl.decide(checks, true)
}

// decide counts (when add is set) one request against checks, in Shared
// when there is one, else (or when Shared cannot be reached) in this
// process.
func (rl *RateLimiter) decide(checks []check, add bool) (bool, []Quota) {
	now := rl.now()
	if rl.Shared != nil && len(checks) > 0 {
		ok, qs, err := rl.shared(now, checks, add)
		if err == nil {
			return ok, qs
		}
		if rl.OnSharedError != nil {
			rl.OnSharedError(err)
		}
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.count(now, checks, add)
}

// check is one limit to count a request against. Its key (prefix, id
// and, for the toolkit client, "\x00" and the instance) is built into a
// caller's buffer only to look its window up, since a string made per
// request was a tenth of an authenticated GET's allocations.
type check struct {
	policy   string
	prefix   string
	id       string
	instance string
	limit    Limit
}

// maxKeyOnStack is the key length appendKey's callers build without
// allocating.
const maxKeyOnStack = 128

func (c *check) appendKey(b []byte) []byte {
	b = append(append(b, c.prefix...), c.id...)
	if c.instance != "" {
		b = append(append(b, 0), c.instance...)
	}
	return b
}

// SourceExhausted reports whether source has used up its quota of
// unauthenticated and failed attempts, without counting one, with the
// quota for the response headers.
func (rl *RateLimiter) SourceExhausted(source string) (bool, []Quota) {
	if rl.PerSource.Requests == 0 {
		return false, nil
	}
	ok, qs := rl.decide([]check{{policy: "source", prefix: "s|", id: source, limit: rl.PerSource}}, false)
	return !ok, qs
}

// FailSource counts one unauthenticated or failed attempt of source and
// reports whether it was within the quota.
func (rl *RateLimiter) FailSource(source string) (bool, []Quota) {
	if rl.PerSource.Requests == 0 {
		return true, nil
	}
	return rl.decide([]check{{policy: "source", prefix: "s|", id: source, limit: rl.PerSource}}, true)
}

// count checks (and, when add is set and every check passes, counts) one
// request against checks. The caller holds rl.mu.
func (rl *RateLimiter) count(now time.Time, checks []check, add bool) (bool, []Quota) {
	if rl.windows == nil {
		rl.windows = map[string]*window{}
	}
	rl.forgetOld(now)
	allowed := true
	var wsArr [2]*window
	ws := wsArr[:0]
	var kb [maxKeyOnStack]byte
	for i := range checks {
		c := &checks[i]
		key := c.appendKey(kb[:0])
		w := rl.windows[string(key)] // no copy of key for the lookup
		if w == nil || now.Sub(w.start) >= c.limit.Window {
			w = &window{start: now.Truncate(time.Second)}
			rl.windows[string(key)] = w
		}
		ws = append(ws, w)
		if w.count >= c.limit.Requests {
			if allowed && rl.OnRefuse != nil {
				rl.OnRefuse(c.policy)
			}
			allowed = false
		}
	}
	quotas := make([]Quota, len(checks))
	for i, c := range checks {
		if allowed && add {
			ws[i].count++
		}
		quotas[i] = Quota{Policy: c.policy, Limit: c.limit, Remaining: max(c.limit.Requests-ws[i].count, 0),
			Reset: resetSeconds(ws[i].start.Add(c.limit.Window).Sub(now))}
	}
	return allowed, quotas
}

// resetSeconds is the time until a window ends in whole seconds, rounded
// up, at least 1.
func resetSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// forgetOld drops windows that ended, at most once a minute, so the map
// does not grow with every client id ever presented.
func (rl *RateLimiter) forgetOld(now time.Time) {
	if now.Sub(rl.sweep) < time.Minute {
		return
	}
	rl.sweep = now
	longest := max(rl.PerClient.Window, rl.PerInstance.Window, rl.PerSource.Window)
	for k, w := range rl.windows {
		if now.Sub(w.start) >= longest {
			delete(rl.windows, k)
		}
	}
}

// RetryAfter is the seconds until every exhausted quota has reset.
func RetryAfter(qs []Quota) int {
	secs := 0
	for _, q := range qs {
		if q.Remaining == 0 && q.Reset > secs {
			secs = q.Reset
		}
	}
	return max(secs, 1)
}

// PolicyHeader and StateHeader render quotas as the draft's structured
// fields, e.g. RateLimit-Policy: "client";q=600;w=60 and
// RateLimit: "client";r=599;t=60.
// They are written on every authenticated answer, so they are appended
// into one buffer on the stack rather than formatted (the bytes fmt's %q
// and %d give), and the policies, the same on nearly every answer, are
// rendered once for as long as they stay the same.
func PolicyHeader(qs []Quota) string {
	if e := lastPolicy.Load(); e != nil && e.is(qs) {
		return e.header
	}
	e := &policyEntry{header: quotaHeader(qs, false)}
	for _, q := range qs {
		e.policies = append(e.policies, q.Policy)
		e.limits = append(e.limits, q.Limit)
	}
	lastPolicy.Store(e)
	return e.header
}

func StateHeader(qs []Quota) string { return quotaHeader(qs, true) }

// lastPolicy is the RateLimit-Policy value rendered last and what it was
// rendered from.
var lastPolicy atomic.Pointer[policyEntry]

type policyEntry struct {
	policies []string
	limits   []Limit
	header   string
}

func (e *policyEntry) is(qs []Quota) bool {
	if len(qs) != len(e.policies) {
		return false
	}
	for i, q := range qs {
		if q.Policy != e.policies[i] || q.Limit != e.limits[i] {
			return false
		}
	}
	return true
}

func quotaHeader(qs []Quota, state bool) string {
	var arr [96]byte
	b := arr[:0]
	for i, q := range qs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, q.Policy)
		if state {
			b = append(b, ";r="...)
			b = strconv.AppendInt(b, int64(q.Remaining), 10)
			b = append(b, ";t="...)
			b = strconv.AppendInt(b, int64(q.Reset), 10)
		} else {
			b = append(b, ";q="...)
			b = strconv.AppendInt(b, int64(q.Limit.Requests), 10)
			b = append(b, ";w="...)
			b = strconv.AppendInt(b, int64(q.Limit.Window/time.Second), 10)
		}
	}
	return string(b)
}

// Verdict is a rate-limit decision as every HTTP surface answers it: the
// RateLimit-Policy and RateLimit header values ("" when no limit applies)
// and, for a refused call, the seconds to wait. Each surface writes the
// refusal in its own error shape.
type Verdict struct {
	OK          bool
	Policy      string
	State       string
	RetryAfter  int
	Explanation string // for the refusal's message
}

// Check counts one call, like Allow, and returns the verdict. A nil
// limiter allows everything.
func (rl *RateLimiter) Check(clientID, instanceID string) Verdict {
	if rl == nil {
		return Verdict{OK: true}
	}
	ok, qs := rl.Allow(clientID, instanceID)
	if len(qs) == 0 {
		return Verdict{OK: true}
	}
	v := Verdict{OK: ok, Policy: PolicyHeader(qs), State: StateHeader(qs)}
	if !ok {
		v.RetryAfter = RetryAfter(qs)
		v.Explanation = fmt.Sprintf("rate limit exceeded (%s); retry in %d s", v.Policy, v.RetryAfter)
	}
	return v
}

// SourceVerdict is the verdict on a call that has not authenticated, or
// failed to, from source: with count set it counts one such attempt (a
// failure), else it only says whether source has used up its quota. A nil
// limiter, or one without a per-source limit, allows everything.
func (rl *RateLimiter) SourceVerdict(source string, count bool) Verdict {
	if rl == nil || rl.PerSource.Requests == 0 {
		return Verdict{OK: true}
	}
	var ok bool
	var qs []Quota
	if count {
		ok, qs = rl.FailSource(source)
	} else {
		var over bool
		over, qs = rl.SourceExhausted(source)
		ok = !over
	}
	v := Verdict{OK: ok, Policy: PolicyHeader(qs), State: StateHeader(qs)}
	if !ok {
		v.RetryAfter = RetryAfter(qs)
		v.Explanation = fmt.Sprintf("rate limit exceeded (%s); retry in %d s: too many unauthenticated or failed requests from this address", v.Policy, v.RetryAfter)
	}
	return v
}

// Admitter returns the Admit hook of token requests: once the caller has
// authenticated, the call counts against its client and instance. seen
// gets every verdict (to set the response headers); a refusal is a
// TooManyRequests error carrying the explanation. A nil limiter gives a
// nil hook.
func (rl *RateLimiter) Admitter(seen func(Verdict)) func(clientID, instanceID string) error {
	if rl == nil {
		return nil
	}
	return func(clientID, instanceID string) error {
		v := rl.Check(clientID, instanceID)
		seen(v)
		if !v.OK {
			return TooManyRequestsf("%s", v.Explanation)
		}
		return nil
	}
}
