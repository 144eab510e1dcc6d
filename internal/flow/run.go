package flow

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/secret"
	"gopkg.in/yaml.v3"
)

// program is a compiled flow.
type program struct {
	rt          *runtimeEnv
	flow        *Flow
	steps       []step
	calls       []*callStep
	triggerNode *yaml.Node
}

// runtimeEnv is what the flows of one loaded project share at run time:
// the configuration as jq sees it, credentials, the outbound HTTP client
// and the redactor. It is built once per Load.
type runtimeEnv struct {
	config any
	creds  map[string]Credential
	redact *redactor
	client *http.Client
	logger *slog.Logger
	sleep  func(ctx context.Context, d time.Duration) error
	conns  Connectors
}

func newRuntimeEnv(fsys fs.FS, cfg *Config) (*runtimeEnv, error) {
	rt := &runtimeEnv{config: map[string]any{}, sleep: sleepCtx}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Values != nil {
		v, err := normalizeJSON(cfg.Values)
		if err != nil {
			return nil, fmt.Errorf("flow: configuration values are not JSON-able: %w", err)
		}
		rt.config = v
	}
	rt.creds = cfg.Credentials
	rt.conns = cfg.Connectors
	rt.redact = newRedactor(cfg.Credentials)
	rt.logger = cfg.Logger
	if rt.logger == nil {
		rt.logger = slog.Default()
	}
	if cfg.Sleep != nil {
		rt.sleep = cfg.Sleep
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
		if cfg.Dial != nil {
			t.DialContext = cfg.Dial
		}
		tr = t
	}
	// No client-wide timeout: every http step sets its own per attempt.
	rt.client = &http.Client{Transport: tr}
	return rt, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// redactor replaces the clear text of every configured secret with
// secret.Redacted. It is applied to everything derived from run-time data
// that leaves the engine other than the flow's answer itself: trace
// excerpts, log lines, error messages.
type redactor struct {
	r *strings.Replacer
}

// minSecretLen keeps one- and two-character passwords from turning every
// excerpt into confetti; such passwords are not secrets worth the name.
const minSecretLen = 3

func newRedactor(creds map[string]Credential) *redactor {
	var secrets []string
	for _, c := range creds {
		pw := c.Password.Reveal()
		if len(pw) < minSecretLen {
			continue
		}
		secrets = append(secrets, pw)
		// An echoed Authorization header carries the basic credentials
		// base64-encoded.
		secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(c.User+":"+pw)))
	}
	if len(secrets) == 0 {
		return &redactor{}
	}
	// Longest first, so a secret containing another is replaced whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	args := make([]string, 0, 2*len(secrets))
	for _, s := range slices.Compact(secrets) {
		args = append(args, s, secret.Redacted)
	}
	return &redactor{r: strings.NewReplacer(args...)}
}

func (r *redactor) string(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Excerpt limits: enough to debug a message, small enough that a trace of
// a busy flow stays cheap.
const (
	excerptString = 512
	excerptItems  = 20
	excerptDepth  = 8
)

// excerpt returns a redacted, truncated deep copy of v for a trace.
func (r *redactor) excerpt(v any, depth int) any {
	switch v := v.(type) {
	case string:
		s := r.string(v)
		if len(s) > excerptString {
			cut := excerptString
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
			s = s[:cut] + fmt.Sprintf("…(%d bytes)", len(s))
		}
		return s
	case map[string]any:
		if depth >= excerptDepth {
			return "{…}"
		}
		keys := slices.Sorted(maps.Keys(v))
		out := make(map[string]any, min(len(keys), excerptItems+1))
		for i, k := range keys {
			if i == excerptItems {
				out["…"] = fmt.Sprintf("%d more keys", len(keys)-i)
				break
			}
			out[r.string(k)] = r.excerpt(v[k], depth+1)
		}
		return out
	case []any:
		if depth >= excerptDepth {
			return "[…]"
		}
		n := min(len(v), excerptItems)
		out := make([]any, 0, n+1)
		for _, x := range v[:n] {
			out = append(out, r.excerpt(x, depth+1))
		}
		if len(v) > n {
			out = append(out, fmt.Sprintf("…%d more items", len(v)-n))
		}
		return out
	}
	return v
}

// sensitiveHeaders are never shown in trace excerpts whatever their value:
// they carry the inbound caller's credentials, which no configuration lists.
var sensitiveHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"x-api-key": true, "x-ibm-client-secret": true,
}

// state is one message on its way through a flow.
type state struct {
	body     any
	headers  *strs // own[0] unless a call step shares its caller's
	query    *strs
	params   *strs
	vars     *vars // persistent: steps make new ones, never change one
	response any
	errv     any
	reply    *Response
	app      map[string]any // the gateway's caller, nil when none
	source   map[string]any // a message source's metadata, nil when none
	own      [3]strs
	ownVars  vars
	// ownInputs are the first inputs steps are given (see input).
	ownInputs  [2]jqInput
	usedInputs int
}

// emptyMap stands for absent headers, query or params; nothing writes to
// these maps, so all runs can share it.
var emptyMap = map[string]any{}

// strs is the message's headers, query or params: strings that jq sees
// as an object, converted on first read — most flows never read their
// headers or query, and building them was a good part of a request's
// cost. A run reads them on its own goroutine only.
type strs struct {
	src    map[string]string
	header http.Header // Message.Header, when src is nil
	raw    string      // Message.RawQuery, when src and header are nil
	path   PathValuer  // Message.Path, when src is nil: the values of names
	names  []string
	m      map[string]any
	built  bool
}

func (s *strs) value() map[string]any {
	if !s.built {
		s.m, s.built = s.build(), true
	}
	return s.m
}

// member is .name of the object, without building it when the strings
// are a map already (params, a message source's headers): a flow
// reading .params.customer costs one lookup, not a map of all of them.
func (s *strs) member(name string) any {
	switch {
	case s.built:
	case len(s.src) > 0:
		if v, ok := s.src[name]; ok {
			return v
		}
		return nil
	case s.path != nil:
		if slices.Contains(s.names, name) {
			return s.path.PathValue(name)
		}
		return nil
	}
	return s.value()[name]
}

func (s *strs) build() map[string]any {
	switch {
	case len(s.src) > 0:
		out := make(map[string]any, len(s.src))
		for k, v := range s.src {
			out[k] = v
		}
		return out
	case len(s.header) > 0:
		out := make(map[string]any, len(s.header))
		for k, v := range s.header {
			if len(v) > 0 {
				lk, ok := lowerHeader[k]
				if !ok {
					lk = strings.ToLower(k)
				}
				out[lk] = v[0]
			}
		}
		return out
	case s.path != nil && len(s.names) > 0:
		out := make(map[string]any, len(s.names))
		for _, name := range s.names {
			out[name] = s.path.PathValue(name)
		}
		return out
	case s.raw != "":
		// As net/http's URL.Query: the pairs that parse.
		q, _ := url.ParseQuery(s.raw)
		out := make(map[string]any, len(q))
		for k, v := range q {
			if len(v) > 0 {
				out[k] = v[0]
			}
		}
		return out
	}
	return emptyMap
}

// lowerHeader holds the lower-case names of common headers, so that
// reading .headers does not allocate a new string for each of them; the
// X-IBM client headers are on every call of a client-id plan.
var lowerHeader = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Forwarded", "If-Match",
		"If-None-Match", "Origin", "Referer", "Traceparent", "Tracestate", "User-Agent", "X-Correlation-Id",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Ibm-Client-Id", "X-Ibm-Client-Secret", "X-Real-Ip", "X-Request-Id"} {
		m[h] = strings.ToLower(h)
	}
	return m
}()

func newState(msg *Message) *state {
	st := &state{}
	st.init(msg)
	return st
}

// init makes a zero st the state of msg at the start of a run.
func (st *state) init(msg *Message) {
	if msg == nil {
		msg = &Message{}
	}
	st.body = msg.Body
	st.own[0] = strs{src: msg.Headers, header: msg.Header}
	st.own[1] = strs{src: msg.Query, raw: msg.RawQuery}
	st.own[2] = strs{src: msg.Params, path: msg.Path, names: msg.ParamNames}
	st.headers, st.query, st.params = &st.own[0], &st.own[1], &st.own[2]
	// Steps never write to a vars' map, so the caller's can be used as
	// it is.
	st.ownVars.base = msg.Vars
	if st.ownVars.base == nil {
		st.ownVars.base = emptyMap
	}
	st.vars = &st.ownVars
	st.app = msg.App
	st.source = msg.Source
}

// input is the message as jq programs see it, as it is now: a later step
// changing the state does not change what an earlier one was given.
//
// The first inputs come from the state's own slots (a map and a reply are
// two): each is still given to one step only, never reused.
func (st *state) input(rt *runtimeEnv) *jqInput {
	var in *jqInput
	if st.usedInputs < len(st.ownInputs) {
		in = &st.ownInputs[st.usedInputs]
		st.usedInputs++
	} else {
		in = new(jqInput)
	}
	*in = jqInput{body: st.body, headers: st.headers, query: st.query, params: st.params, vars: st.vars,
		config: rt.config, response: st.response, errv: st.errv, app: st.app, source: st.source}
	return in
}

// jqInput is the input of a step's programs: the object {body, headers,
// query, params, vars, config, response?, error?, app?, source?}, built
// as a map only when gojq runs. The native form (native.go) reads its
// members directly and never answers with the input itself, which would
// put this type into a value; gojq is given object().
type jqInput struct {
	body                   any
	headers, query, params *strs
	vars                   *vars
	config, response, errv any
	app, source            map[string]any
	obj                    map[string]any
}

// get is .key of the input (null for a key it does not have).
func (in *jqInput) get(key string) any {
	switch key {
	case "body":
		return in.body
	case "headers":
		return in.headers.value()
	case "query":
		return in.query.value()
	case "params":
		return in.params.value()
	case "vars":
		return in.vars.object()
	case "config":
		return in.config
	case "response":
		return in.response
	case "error":
		return in.errv
	case "app":
		if in.app != nil {
			return in.app
		}
	case "source":
		if in.source != nil {
			return in.source
		}
	}
	return nil
}

// member is .key.name of the input, for the members that are objects of
// the engine's own (vars, headers, query, params), read without building
// them; ok is false for any other key.
func (in *jqInput) member(key, name string) (any, bool) {
	switch key {
	case "vars":
		return in.vars.get(name), true
	case "headers":
		return in.headers.member(name), true
	case "query":
		return in.query.member(name), true
	case "params":
		return in.params.member(name), true
	}
	return nil, false
}

// object is the input as gojq sees it; made once per input.
func (in *jqInput) object() map[string]any {
	if in.obj != nil {
		return in.obj
	}
	m := map[string]any{
		"body":    in.body,
		"headers": in.headers.value(),
		"query":   in.query.value(),
		"params":  in.params.value(),
		"vars":    in.vars.object(),
		"config":  in.config,
	}
	if in.response != nil {
		m["response"] = in.response
	}
	if in.errv != nil {
		m["error"] = in.errv
	}
	if in.app != nil {
		m["app"] = in.app
	}
	if in.source != nil {
		m["source"] = in.source
	}
	in.obj = m
	return m
}

// vars is the flow's variables, persistent: setting one makes a new vars
// on top of the old, which values taken before may still hold, instead of
// a copy of the map — a for-each with a set copied it twice per element.
// jq sees an object: .vars.name is looked up along the chain, and the
// object is built only when a program takes .vars whole or gojq runs.
type vars struct {
	parent *vars          // nil: base holds them all
	base   map[string]any // when parent is nil; never written to
	name   string
	val    any
	depth  int
	obj    map[string]any // the object, once built
}

// maxVarsDepth bounds a lookup's walk; a deeper chain is folded into a
// map (a for-each over n elements with one set copies n/4 maps, not 2n).
const maxVarsDepth = 8

func (v *vars) get(name string) any {
	n := v
	for ; n.parent != nil; n = n.parent {
		if n.name == name {
			return n.val
		}
	}
	return n.base[name]
}

// with is v with name set to val.
func (v *vars) with(name string, val any) *vars {
	if v.depth >= maxVarsDepth {
		m := maps.Clone(v.object())
		m[name] = val
		return &vars{base: m}
	}
	return &vars{parent: v, name: name, val: val, depth: v.depth + 1}
}

// without is v without name, and with into set to val unless into is "".
func (v *vars) without(name, into string, val any) *vars {
	m := maps.Clone(v.object())
	delete(m, name)
	if into != "" {
		m[into] = val
	}
	return &vars{base: m}
}

// object is the variables as one map, which nobody may write to.
func (v *vars) object() map[string]any {
	if v.parent == nil {
		return v.base
	}
	if v.obj != nil {
		return v.obj
	}
	var chain [maxVarsDepth]*vars
	n, r := 0, v
	for ; r.parent != nil; r = r.parent {
		chain[n] = r
		n++
	}
	m := make(map[string]any, len(r.base)+n)
	for k, x := range r.base {
		m[k] = x
	}
	for i := n - 1; i >= 0; i-- {
		m[chain[i].name] = chain[i].val
	}
	v.obj = m
	return m
}

// jqValue is in as gojq may be given it.
func jqValue(in any) any {
	if r, ok := in.(*jqInput); ok {
		return r.object()
	}
	return in
}

// snapshot is the part of the state a trace shows.
func (st *state) snapshot(r *redactor) any {
	m := map[string]any{
		"body":   r.excerpt(st.body, 1),
		"vars":   r.excerpt(st.vars.object(), 1),
		"params": r.excerpt(st.params.value(), 1),
	}
	if headers := st.headers.value(); len(headers) > 0 {
		h := make(map[string]any, len(headers))
		for k, v := range headers {
			if sensitiveHeaders[k] {
				v = secret.Redacted
			}
			h[k] = v
		}
		m["headers"] = r.excerpt(h, 1)
	}
	if st.response != nil {
		resp := st.response.(map[string]any)
		if _, isHTTP := resp["status"]; isHTTP {
			m["response"] = map[string]any{"status": resp["status"], "body": r.excerpt(resp["body"], 2)}
		} else {
			m["response"] = r.excerpt(resp, 1) // publish and sql results
		}
	}
	if st.errv != nil {
		m["error"] = r.excerpt(st.errv, 1)
	}
	if st.reply != nil {
		m["reply"] = map[string]any{"status": st.reply.Status, "body": r.excerpt(st.reply.Body, 2)}
	}
	if st.app != nil {
		m["app"] = st.app // names and ids only: the gateway never puts a secret here
	}
	if st.source != nil {
		m["source"] = r.excerpt(st.source, 1)
	}
	return m
}

// errReplied unwinds the step stack after a reply step; it is not a
// failure and no try catches it.
var errReplied = errors.New("flow replied")

// execution is one Run: shared by the steps of the flow and of the flows
// it calls.
type execution struct {
	rt   *runtimeEnv
	tr   Tracer
	flow string
}

// Run executes the flow on msg. It returns the flow's answer, an *Error
// (a fail step, a failed validation, a broken step: Status says how the
// runtime should answer), or ctx's error when the context ends or the
// flow's timeout passes. msg is not modified.
func (f *Flow) Run(ctx context.Context, msg *Message, tr Tracer) (*Response, error) {
	if f == nil || f.prog == nil {
		return nil, errors.New("flow: run of a flow that was not loaded")
	}
	// A caller (the runtime) that already set a deadline at least as
	// tight spares the extra timer.
	if dl, ok := ctx.Deadline(); f.Timeout > 0 && (!ok || time.Until(dl) > f.Timeout) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	r := runStates.Get().(*runState)
	r.x = execution{rt: f.prog.rt, tr: tr, flow: f.Name}
	x, st := &r.x, &r.st
	st.init(msg)
	resp, err := x.runFlow(ctx, f, st)
	// A run that panicked leaves its runState to the collector.
	*r = runState{}
	runStates.Put(r)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !isFlowError(err) {
			if errors.Is(ctxErr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("flow %s: timed out: %w", f.Name, ctxErr)
			}
			return nil, fmt.Errorf("flow %s: %w", f.Name, ctxErr)
		}
		return nil, err
	}
	return resp, nil
}

// runState is a run's execution and its message's state: one allocation,
// as a run needs both for as long as each other, and reused once the run
// is over (runStates) — it was the largest allocation of a light request,
// a seventh of its bytes. Nothing a run answers or leaves behind points
// into it: answers, errors and trace events hold values the steps
// computed, never a step's *jqInput (see identity), the state's own
// strs or vars, which only the run and the flows it calls reach.
type runState struct {
	x  execution
	st state
}

var runStates = sync.Pool{New: func() any { return new(runState) }}

func isFlowError(err error) bool {
	var fe *Error
	return errors.As(err, &fe)
}

// runFlow runs f's steps on st and turns the outcome into a Response: the
// reply, or the final body with 200.
func (x *execution) runFlow(ctx context.Context, f *Flow, st *state) (*Response, error) {
	err := x.runSteps(ctx, f.prog.steps, st)
	switch {
	case err == errReplied:
		return st.reply, nil
	case err != nil:
		return nil, err
	}
	return &Response{Status: http.StatusOK, Body: st.body}, nil
}

// runSteps runs a sequence of steps. The untraced path does nothing but
// call the steps: with a nil Tracer no excerpt is built and no clock read.
func (x *execution) runSteps(ctx context.Context, steps []step, st *state) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if trace.SpanFromContext(ctx).IsRecording() {
			// OpenTelemetry is on and the run is sampled: a span per step.
			if err := x.spanned(ctx, s, st); err != nil {
				return err
			}
			continue
		}
		if x.tr == nil {
			if err := s.run(ctx, x, st); err != nil {
				return err
			}
			continue
		}
		if err := x.traced(ctx, s, st); err != nil {
			return err
		}
	}
	return nil
}

// spanned runs one step inside an OpenTelemetry span named by its label.
func (x *execution) spanned(ctx context.Context, s step, st *state) error {
	ctx, span := otel.Tracer("github.com/sluice-dev/sluice/internal/flow").Start(ctx, "step "+s.label(),
		trace.WithAttributes(attribute.String("sluice.flow", x.flow), attribute.String("sluice.step", s.label())))
	defer span.End()
	var err error
	if x.tr == nil {
		err = s.run(ctx, x, st)
	} else {
		err = x.traced(ctx, s, st)
	}
	if err != nil && err != errReplied {
		span.SetStatus(codes.Error, "step failed")
	}
	return err
}

func (x *execution) traced(ctx context.Context, s step, st *state) error {
	in := st.snapshot(x.rt.redact)
	start := time.Now()
	err := s.run(ctx, x, st)
	ev := StepEvent{
		Flow:     x.flow,
		Step:     s.label(),
		Start:    start,
		Duration: time.Since(start),
		Input:    in,
		Output:   st.snapshot(x.rt.redact),
	}
	if err != nil && err != errReplied {
		ev.Err = err
	}
	x.tr.Step(ev)
	return err
}

// stepError turns a step's internal failure into the *Error a flow ends
// with, redacted. Context errors pass through untouched: they are not the
// step's fault and no try may swallow them.
func (x *execution) stepError(ctx context.Context, label string, status int, err error, keepCause bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fe := &Error{Status: status, Message: x.rt.redact.string(label + ": " + err.Error()), Step: label}
	if keepCause {
		fe.err = err
	}
	return fe
}

// Local reports whether every step of the flow, and of the flows it calls,
// does its work in the process — map, set, validate, switch, for-each,
// try, call, log, reply, fail — without waiting on a server (http,
// publish, sql, redis). Such a run ends when its work does: the engine
// checks the context between steps and gojq inside jq programs, so its
// caller may run it on its own goroutine rather than guard it with a
// deadline of its own.
func (f *Flow) Local() bool {
	return f != nil && f.prog != nil && localFlow(f, map[*Flow]bool{})
}

func localFlow(f *Flow, seen map[*Flow]bool) bool {
	if seen[f] {
		return true // decided where it was first met (Load refuses cycles)
	}
	seen[f] = true
	return localSteps(f.prog.steps, seen)
}

func localSteps(steps []step, seen map[*Flow]bool) bool {
	for _, s := range steps {
		switch s := s.(type) {
		case *mapStep, *setStep, *validateStep, *logStep, *replyStep, *failStep:
		case *switchStep:
			for _, c := range s.cases {
				if !localSteps(c.steps, seen) {
					return false
				}
			}
			if !localSteps(s.dflt, seen) {
				return false
			}
		case *forEachStep:
			if !localSteps(s.steps, seen) {
				return false
			}
		case *tryStep:
			if !localSteps(s.steps, seen) || !localSteps(s.catch, seen) {
				return false
			}
		case *callStep:
			if s.flow == nil || s.flow.prog == nil || !localFlow(s.flow, seen) {
				return false
			}
		default:
			return false
		}
	}
	return true
}
