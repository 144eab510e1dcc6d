package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults of http steps: one attempt, a bounded wait, and a response size
// that fits comfortably in memory.
const (
	defaultHTTPTimeout = 30 * time.Second
	defaultBackoff     = 100 * time.Millisecond
	maxAttempts        = 10
	maxResponseBody    = 16 << 20
)

// httpStep sends one outbound request and puts the answer in .response
// {status, headers, body}. Transport errors and timeouts, after the last
// attempt, fail the step (502, 504); HTTP error statuses do not: the flow
// decides what a 404 or a 503 means.
type httpStep struct {
	stepBase
	method   string
	url      *template
	hdrKeys  []string
	hdrVals  []*template
	qKeys    []string
	qVals    []*template
	body     *expr
	authKind string // "", "basic", "bearer"
	authRes  string
	timeout  time.Duration
	attempts int
	backoff  time.Duration
	exp      bool
}

func (c *compiler) httpStep(b stepBase, n *yaml.Node) step {
	m := c.l.mapping(c.file, n, "http", "request", "auth", "timeout", "retry")
	if m == nil {
		return nil
	}
	s := &httpStep{stepBase: b, method: "GET", timeout: defaultHTTPTimeout, attempts: 1, backoff: defaultBackoff}
	ok := true
	rn := m.get("request")
	if rn == nil {
		c.errAt(n, "http needs request {method, url, headers, query, body}")
		return nil
	}
	rm := c.l.mapping(c.file, rn, "http request", "method", "url", "headers", "query", "body")
	if rm == nil {
		return nil
	}
	if mn := rm.get("method"); mn != nil {
		if v, vok := c.l.str(c.file, mn, "method"); vok {
			s.method = strings.ToUpper(v)
			if !slices.Contains(methods, s.method) {
				c.errAt(mn, "unsupported method %q (want one of %s)", v, strings.Join(methods, ", "))
				ok = false
			}
		}
	}
	if un := rm.get("url"); un == nil {
		c.errAt(rn, "http request needs url")
		ok = false
	} else if s.url = c.tmpl(un, b.lbl+" url"); s.url == nil {
		ok = false
	} else if s.url.konst {
		if u, err := url.Parse(s.url.s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.errAt(un, "url %q must be an absolute http or https URL", s.url.s)
			ok = false
		}
	}
	if hn := rm.get("headers"); hn != nil {
		keys, vals, hok := c.headerTemplates(hn, b.lbl)
		s.hdrKeys, s.hdrVals, ok = keys, vals, ok && hok
	}
	if qn := rm.get("query"); qn != nil {
		if qm := c.l.mapping(c.file, qn, "query"); qm != nil {
			for _, k := range qm.keys {
				t := c.tmpl(qm.get(k.Value), b.lbl+" query "+k.Value)
				if t == nil {
					ok = false
					continue
				}
				s.qKeys = append(s.qKeys, k.Value)
				s.qVals = append(s.qVals, t)
			}
		}
	}
	if bn := rm.get("body"); bn != nil {
		if s.body = c.jqExpr(bn, b.lbl+" body"); s.body == nil {
			ok = false
		}
	}
	if an := m.get("auth"); an != nil {
		ok = c.httpAuth(s, an) && ok
	}
	if tn := m.get("timeout"); tn != nil {
		d, dok := c.l.duration(c.file, tn, "timeout")
		s.timeout, ok = d, ok && dok
	}
	if rt := m.get("retry"); rt != nil {
		ok = c.httpRetry(s, rt) && ok
	}
	if !ok {
		return nil
	}
	return s
}

// httpAuth reads `auth: resource` (basic) or `auth: {basic|bearer: resource}`.
// The resource names a setdbparms entry; bearer sends its password as the token.
func (c *compiler) httpAuth(s *httpStep, n *yaml.Node) bool {
	n = deref(n)
	s.authKind = "basic"
	rn := n
	if n.Kind == yaml.MappingNode {
		m := c.l.mapping(c.file, n, "auth", "basic", "bearer")
		if m == nil {
			return false
		}
		if len(m.keys) != 1 {
			c.errAt(n, "auth needs exactly one of basic, bearer")
			return false
		}
		s.authKind = m.keys[0].Value
		rn = m.get(s.authKind)
	}
	res, ok := c.l.str(c.file, rn, "auth resource")
	if !ok {
		return false
	}
	s.authRes = res
	if c.l.cfg != nil {
		if _, found := c.l.cfg.Credentials[res]; !found {
			c.errAt(rn, "auth: no credentials for resource %q in the setdbparms configuration", res)
			return false
		}
	}
	return true
}

func (c *compiler) httpRetry(s *httpStep, n *yaml.Node) bool {
	m := c.l.mapping(c.file, n, "retry", "attempts", "backoff", "exponential")
	if m == nil {
		return false
	}
	ok := true
	if an := m.get("attempts"); an != nil {
		s.attempts, ok = c.l.integer(c.file, an, "retry attempts", 1, maxAttempts)
	}
	if bn := m.get("backoff"); bn != nil {
		d, dok := c.l.duration(c.file, bn, "retry backoff")
		s.backoff, ok = d, ok && dok
	}
	if en := m.get("exponential"); en != nil {
		e, eok := c.l.boolean(c.file, en, "retry exponential")
		s.exp, ok = e, ok && eok
	}
	return ok
}

// outbound is a request ready to send, built once and replayed per attempt.
type outbound struct {
	method string
	url    string
	header http.Header
	body   []byte
}

func (s *httpStep) build(ctx context.Context, x *execution, in *jqInput) (*outbound, error) {
	raw, err := s.url.eval(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an absolute http or https URL", raw)
	}
	if len(s.qKeys) > 0 {
		q := u.Query()
		for i, k := range s.qKeys {
			v, err := s.qVals[i].eval(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", k, err)
			}
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	o := &outbound{method: s.method, url: u.String(), header: http.Header{}}
	for i, k := range s.hdrKeys {
		v, err := s.hdrVals[i].eval(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", k, err)
		}
		o.header.Set(k, v)
	}
	if s.body != nil {
		v, err := s.body.eval(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		ctype := "application/json"
		if str, isStr := v.(string); isStr {
			o.body, ctype = []byte(str), "text/plain; charset=utf-8"
		} else if o.body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		if o.header.Get("Content-Type") == "" {
			o.header.Set("Content-Type", ctype)
		}
	}
	if o.header.Get("Accept") == "" {
		o.header.Set("Accept", "application/json, */*;q=0.5")
	}
	if s.authKind != "" {
		cred, found := x.rt.creds[s.authRes]
		if !found {
			return nil, fmt.Errorf("no credentials for resource %q", s.authRes)
		}
		if s.authKind == "bearer" {
			o.header.Set("Authorization", "Bearer "+cred.Password.Reveal())
		} else {
			req := http.Request{Header: o.header}
			req.SetBasicAuth(cred.User, cred.Password.Reveal())
		}
	}
	return o, nil
}

func (s *httpStep) run(ctx context.Context, x *execution, st *state) error {
	o, err := s.build(ctx, x, st.input(x.rt))
	if err != nil {
		return x.stepError(ctx, s.lbl, 500, err, false)
	}
	backoff := s.backoff
	var resp map[string]any
	for attempt := 1; ; attempt++ {
		resp, err = s.once(ctx, x, o)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(resp, err) || attempt == s.attempts {
			break
		}
		if err := x.rt.sleep(ctx, backoff); err != nil {
			return err
		}
		if s.exp {
			backoff *= 2
		}
	}
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
			err = fmt.Errorf("%s %s: no answer within %s", o.method, redactURL(o.url), s.timeout)
		}
		suffix := ""
		if s.attempts > 1 {
			suffix = fmt.Sprintf(" (after %d attempts)", s.attempts)
		}
		return x.stepError(ctx, s.lbl, status, fmt.Errorf("%w%s", err, suffix), true)
	}
	st.response = resp
	return nil
}

// retryable: the peer did not answer, or answered that it is overloaded or
// broken. Other statuses are the peer's final word.
func retryable(resp map[string]any, err error) bool {
	if err != nil {
		return true
	}
	status := resp["status"].(int)
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

func (s *httpStep) once(ctx context.Context, x *execution, o *outbound) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	req, err := http.NewRequestWithContext(ctx, o.method, o.url, body)
	if err != nil {
		return nil, err
	}
	req.Header = o.header.Clone()
	// The trace the message belongs to goes on to the backend (W3C
	// traceparent), when there is one.
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	res, err := x.rt.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error repeats the URL, query string included; say it once, without secrets.
			return nil, fmt.Errorf("%s %s: %w", o.method, redactURL(o.url), ue.Err)
		}
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading response: %w", o.method, redactURL(o.url), err)
	}
	if len(data) > maxResponseBody {
		return nil, fmt.Errorf("%s %s: response body larger than %d bytes", o.method, redactURL(o.url), maxResponseBody)
	}
	hdr := make(map[string]any, len(res.Header))
	for k, v := range res.Header {
		hdr[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return map[string]any{"status": res.StatusCode, "headers": hdr, "body": decodeBody(res.Header.Get("Content-Type"), data)}, nil
}

// decodeBody gives JSON bodies as values and anything else as a string.
func decodeBody(ctype string, data []byte) any {
	if len(data) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(ctype)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") || (mt == "" && json.Valid(data)) {
		if v, err := decodeJSON(data); err == nil {
			return v
		}
	}
	return string(data)
}

// redactURL drops userinfo and the query string from a URL shown in an
// error: either may carry a token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}
