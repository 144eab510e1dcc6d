package runtime

import (
	"fmt"
	"net/http"
	"strings"
)

// router routes with the standard library's pattern syntax, the syntax the
// flow engine checks trigger paths against (a flow's `GET /orders/{id}` is
// exactly a ServeMux pattern), and turns the mux's plain-text 404 and 405
// into JSON errors. A catch-all pattern receives every unmatched request;
// a second mux without it (probe) then tells a wrong method (405, with the
// Allow header) from an unknown path (404). Only the unmatched path pays
// for the second lookup.
type router struct {
	mux       *http.ServeMux
	probe     *http.ServeMux
	patterns  map[string]string // pattern → owner, for conflict messages
	unmatched func(code int)
}

func newRouter(unmatched func(code int)) *router {
	r := &router{
		mux:       http.NewServeMux(),
		probe:     http.NewServeMux(),
		patterns:  map[string]string{},
		unmatched: unmatched,
	}
	r.mux.HandleFunc("/", r.fallback)
	return r
}

func (r *router) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// handle registers pattern for owner (a human-readable name such as
// `flow "hello" of orders.bar`). A pattern that conflicts with one already
// registered is an error naming both owners; ServeMux itself would panic.
func (r *router) handle(pattern, owner string, h http.Handler) error {
	if prev, dup := r.patterns[pattern]; dup {
		return fmt.Errorf("route %s of %s is also the route of %s", pattern, owner, prev)
	}
	if err := tryHandle(r.probe, pattern, h); err != nil {
		// Find which registered pattern it clashes with, pair by pair;
		// this runs only when loading fails anyway.
		for p, o := range r.patterns {
			m := http.NewServeMux()
			if tryHandle(m, p, h) == nil && tryHandle(m, pattern, h) != nil {
				return fmt.Errorf("route %s of %s conflicts with route %s of %s", pattern, owner, p, o)
			}
		}
		return fmt.Errorf("route %s of %s: %w", pattern, owner, err)
	}
	if err := tryHandle(r.mux, pattern, h); err != nil {
		return fmt.Errorf("route %s of %s: %w", pattern, owner, err)
	}
	r.patterns[pattern] = owner
	return nil
}

func tryHandle(m *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			msg := fmt.Sprint(p)
			// The panic text names the registering source line, which
			// means nothing to whoever wrote the flow.
			if i := strings.Index(msg, " (registered at"); i >= 0 {
				msg = msg[:i]
			}
			err = fmt.Errorf("%s", msg)
		}
	}()
	m.Handle(pattern, h)
	return nil
}

func (r *router) fallback(w http.ResponseWriter, req *http.Request) {
	h, _ := r.probe.Handler(req)
	cw := &captureWriter{header: http.Header{}}
	h.ServeHTTP(cw, req)
	switch cw.status {
	case http.StatusMethodNotAllowed:
		if r.unmatched != nil {
			r.unmatched(http.StatusMethodNotAllowed)
		}
		w.Header().Set("Allow", cw.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed for %s (allowed: %s)", req.Method, req.URL.Path, cw.header.Get("Allow")))
	case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusTemporaryRedirect, http.StatusFound:
		w.Header().Set("Location", cw.header.Get("Location"))
		w.WriteHeader(cw.status)
	default:
		if r.unmatched != nil {
			r.unmatched(http.StatusNotFound)
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("nothing is served at %s %s", req.Method, req.URL.Path))
	}
}

// captureWriter records the status and headers a mux's built-in handler
// would answer with, discarding its plain-text body.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

// wildcards returns the names of a pattern's wildcards ({name} and
// {name...}; {$} is not one).
func wildcards(path string) []string {
	var names []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return names
		}
		name := strings.TrimSuffix(path[i+1:i+j], "...")
		if name != "$" && name != "" {
			names = append(names, name)
		}
		path = path[i+j+1:]
	}
}
