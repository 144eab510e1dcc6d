package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	apispec "github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// kin-openapi decodes the bodies of the media types it knows; a stream of
// server-sent events is text, and a zip (a trace, a bundle) is bytes: both
// are read as a string.
var registerDecoders sync.Once

func decodeText(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

// loadDoc parses the embedded document the way a client would, with the
// server list replaced by the server under test so routes resolve.
func loadDoc(t *testing.T, serverURL string) (*openapi3.T, routers.Router) {
	t.Helper()
	return loadDocFrom(t, apispec.YAML(), serverURL)
}

// loadDocFrom is loadDoc for any of the control plane's documents.
func loadDocFrom(t *testing.T, document []byte, serverURL string) (*openapi3.T, routers.Router) {
	t.Helper()
	registerDecoders.Do(func() {
		openapi3filter.RegisterBodyDecoder("text/event-stream", decodeText)
		openapi3filter.RegisterBodyDecoder("application/zip", decodeText)
	})
	doc, err := openapi3.NewLoader().LoadFromData(document)
	if err != nil {
		t.Fatalf("load the document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return doc, router
}

// exchange is one request and its answer, kept for the coverage checks and
// for the canary scan.
type exchange struct {
	label     string
	op        string // "METHOD /documented/{path}", "" when undocumented
	target    string // the request's path and query
	reqHeader http.Header
	reqBody   []byte
	status    int
	header    http.Header
	body      []byte
}

// call describes one request of a test.
type call struct {
	label  string
	method string
	path   string // with query
	as     *servertest.Client
	basic  []string // client id and secret for HTTP Basic (OAuth client auth)
	// basicRaw is HTTP Basic without OAuth's form-encoding first, as IBM's
	// SDKs send it.
	basicRaw []string
	header   map[string]string
	// body is sent as is when []byte or string, form-encoded when
	// url.Values, and as JSON otherwise (nil: no body).
	body        any
	contentType string // overrides the content type body implies
	want        int    // the status the test expects; 0: any
	// conforms says the request follows the document, so the document's
	// request validation must accept it; rejects says the server refuses
	// it for a reason the document states, so the validation must refuse it.
	conforms bool
	rejects  bool
}

// harness sends calls to a real server and validates every answer against
// the document: status documented for the operation, headers, body schema.
type harness struct {
	t      *testing.T
	srv    *servertest.Server
	doc    *openapi3.T
	router routers.Router
	http   *http.Client

	// appConnect says the document is the main one, whose error bodies
	// start the way App Connect scripts grep for.
	appConnect bool

	mu  sync.Mutex
	log []*exchange

	// apic: the document is api/apic.yaml, whose errors have their own
	// shape (checked by its schema), not the /api/v1 error prefix.
	apic bool
}

func newHarness(t *testing.T, srv *servertest.Server) *harness {
	h := newHarnessFor(t, srv, apispec.YAML())
	h.appConnect = true
	return h
}

// newHarnessFor is a harness that checks answers against another of the
// control plane's documents (an adapter's).
func newHarnessFor(t *testing.T, srv *servertest.Server, document []byte) *harness {
	doc, router := loadDocFrom(t, document, srv.URL)
	return &harness{t: t, srv: srv, doc: doc, router: router, http: &http.Client{Timeout: 30 * time.Second}}
}

func (c call) build(base string) (*http.Request, []byte, error) {
	var raw []byte
	ct := ""
	switch b := c.body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	case url.Values:
		raw, ct = []byte(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, nil, err
		}
		raw, ct = j, "application/json"
	}
	if c.contentType != "" {
		ct = c.contentType
	}
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(c.method, base+c.path, rd)
	if err != nil {
		return nil, nil, err
	}
	if ct != "" && ct != "-" {
		req.Header.Set("Content-Type", ct)
	}
	if c.as != nil {
		req.Header.Set("Authorization", "Bearer "+c.as.Token)
		req.Header.Set("X-IBM-Client-Id", c.as.ClientID)
	}
	if len(c.basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(c.basic[0]), url.QueryEscape(c.basic[1]))
	}
	if len(c.basicRaw) == 2 {
		req.SetBasicAuth(c.basicRaw[0], c.basicRaw[1])
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return req, raw, nil
}

// tokenAnswer is the exact shape of a token answer (see login).
var tokenAnswer = regexp.MustCompile(`^\{"access_token":"[A-Za-z0-9_.-]+","token_type":"bearer","scope":"[a-z:]+","expires_in":[1-9][0-9]*\}\n?$`)

// errorPrefix is how every /api/v1 error body starts: App Connect scripts
// grep for it, so member order is part of the contract although JSON
// Schema cannot say so.
var errorPrefix = regexp.MustCompile(`^\{"error":"Internal error","code":([0-9]{3}),"reason":"`)

// do sends c, validates the answer against the document and returns it.
func (h *harness) do(c call) *exchange {
	h.t.Helper()
	label := c.label
	if label == "" {
		label = c.method + " " + c.path
	}
	req, raw, err := c.build(h.srv.URL)
	if err != nil {
		h.t.Fatalf("%s: %v", label, err)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s: %v", label, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		h.t.Fatalf("%s: reading the answer: %v", label, err)
	}
	ex := &exchange{label: label, target: c.path, reqHeader: req.Header.Clone(), reqBody: raw, status: resp.StatusCode, header: resp.Header, body: body}
	h.mu.Lock()
	h.log = append(h.log, ex)
	h.mu.Unlock()
	if c.want != 0 && resp.StatusCode != c.want {
		h.t.Errorf("%s: status %d, want %d; body %s", label, resp.StatusCode, c.want, body)
	}
	h.validate(c, ex)
	return ex
}

func (h *harness) validate(c call, ex *exchange) {
	h.t.Helper()
	ctx := context.Background()
	vreq, _, _ := c.build(h.srv.URL)
	route, params, err := h.router.FindRoute(vreq)
	if err != nil {
		h.t.Errorf("%s: the document has no operation for it: %v", ex.label, err)
		return
	}
	ex.op = route.Method + " " + route.Path
	opts := &openapi3filter.Options{AuthenticationFunc: credentialsPresent, MultiError: true}
	if c.conforms || c.rejects {
		in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
		err := openapi3filter.ValidateRequest(ctx, in)
		if c.conforms && err != nil {
			h.t.Errorf("%s: the document refuses a request the test means to be valid: %v", ex.label, err)
		}
		if c.rejects && err == nil {
			h.t.Errorf("%s: the server answered %d but the document accepts the request", ex.label, ex.status)
		}
		vreq, _, _ = c.build(h.srv.URL)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts},
		Status:                 ex.status,
		Header:                 ex.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(ex.body)
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		h.t.Errorf("%s: the answer does not follow the document: %v\nstatus %d, headers %v\nbody %s", ex.label, err, ex.status, ex.header, ex.body)
	}
	// kin-openapi skips the body of a response documented without
	// content; such answers must have none.
	if r := route.Operation.Responses.Status(ex.status); r != nil && r.Value != nil && len(r.Value.Content) == 0 && len(ex.body) != 0 {
		h.t.Errorf("%s: status %d is documented without a body, got %q", ex.label, ex.status, ex.body)
	}
	isOAuth := strings.HasPrefix(route.Path, "/oauth/") || strings.HasPrefix(route.Path, "/.well-known/")
	if h.appConnect && ex.status >= 400 && (!isOAuth || ex.status == http.StatusTooManyRequests) {
		m := errorPrefix.FindSubmatch(ex.body)
		if m == nil || string(m[1]) != fmt.Sprint(ex.status) {
			h.t.Errorf("%s: error body does not start with {\"error\":\"Internal error\",\"code\":%d,\"reason\":…: %s", ex.label, ex.status, ex.body)
		}
	}
}

// credentialsPresent stands in for authentication during request
// validation: the server authenticates for real; the document only has to
// demand what a valid request carries.
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	switch s := in.SecurityScheme; {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return errors.New("no bearer token")
		}
	case s.Type == "http" && strings.EqualFold(s.Scheme, "basic"):
		if _, _, ok := r.BasicAuth(); !ok {
			return errors.New("no basic credentials")
		}
	case s.Type == "apiKey" && s.In == "header":
		if r.Header.Get(s.Name) == "" {
			return fmt.Errorf("no %s header", s.Name)
		}
	default:
		return fmt.Errorf("security scheme %s/%s not understood by the test", s.Type, s.Scheme)
	}
	return nil
}

// operations lists every operation of the document as "METHOD /path".
func operations(doc *openapi3.T) []string {
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(ops)
	return ops
}

// requireCoverage fails for every documented operation no call reached
// with a 2xx answer, and for every status in statuses no call got.
func (h *harness) requireCoverage(statuses ...int) {
	h.t.Helper()
	ok := map[string]bool{}
	noBackend := map[string]bool{}
	seen := map[int]bool{}
	for _, ex := range h.log {
		if ex.status < 300 {
			ok[ex.op] = true
		}
		if ex.status == http.StatusServiceUnavailable && strings.Contains(string(ex.body), `"reason":"NoBackend"`) {
			noBackend[ex.op] = true
		}
		// The contract test keeps its runtimes stopped, so a trace
		// download can only answer that the runtime does not run; the
		// walkthrough in test/e2e downloads a real trace.
		if ex.status == http.StatusConflict && strings.Contains(string(ex.body), `"reason":"RuntimeNotRunning"`) {
			noBackend[ex.op] = true
		}
		seen[ex.status] = true
	}
	for _, op := range operations(h.doc) {
		switch {
		case ok[op]:
		case strings.Contains(op, " /internal/"):
			// Runtimes' own endpoints need a runtime's bundle token,
			// which only the reconciler mints; test/e2e drives them.
			h.t.Logf("operation %s is for runtimes only", op)
		case noBackend[op]:
			// No backend, or a stopped runtime: the refusal was validated,
			// the success answer could not be.
			h.t.Logf("operation %s answered only 503 NoBackend or 409 RuntimeNotRunning", op)
		default:
			h.t.Errorf("operation %s was never answered with success by the test", op)
		}
	}
	for _, s := range statuses {
		if !seen[s] {
			h.t.Errorf("no call was answered %d", s)
		}
	}
}

// decode unmarshals an answer's body, failing the test if it is not JSON.
func decode[T any](t *testing.T, ex *exchange) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(ex.body, &v); err != nil {
		t.Fatalf("%s: answer is not the expected JSON: %v: %s", ex.label, err, ex.body)
	}
	return v
}

// login exchanges credentials through the harness (so the token answer is
// validated and recorded) and returns a client holding the token.
func (h *harness) login(label, clientID, clientSecret, instanceID, apiKey string) *servertest.Client {
	h.t.Helper()
	ex := h.do(call{label: label, method: "POST", path: "/api/v1/tokens",
		header: map[string]string{"X-IBM-Client-Id": clientID, "X-IBM-Client-Secret": clientSecret, "x-ibm-instance-id": instanceID},
		body:   map[string]string{"apiKey": apiKey}, want: 200, conforms: true})
	if ex.status != 200 {
		h.t.FailNow()
	}
	// Member order and compactness are contract too: App Connect scripts
	// cut the token out with tr and grep.
	if !tokenAnswer.Match(ex.body) {
		h.t.Errorf("%s: token answer is not compact JSON in the order access_token, token_type, scope, expires_in: %s", label, ex.body)
	}
	tok := decode[struct {
		AccessToken string `json:"access_token"`
	}](h.t, ex)
	return &servertest.Client{URL: h.srv.URL, ClientID: clientID, Token: tok.AccessToken, HTTP: h.http}
}

// stream sends c, reads its answer only until done says enough, then hangs
// up, and validates status and headers (and the part read) against the
// document. It is for server-sent event streams, which never end.
func (h *harness) stream(c call, done func(read []byte) bool) *exchange {
	h.t.Helper()
	req, raw, err := c.build(h.srv.URL)
	if err != nil {
		h.t.Fatalf("%s: %v", c.label, err)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s: %v", c.label, err)
	}
	var read []byte
	buf := make([]byte, 4096)
	for !done(read) {
		n, err := resp.Body.Read(buf)
		read = append(read, buf[:n]...)
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	ex := &exchange{label: c.label, target: c.path, reqHeader: req.Header.Clone(), reqBody: raw, status: resp.StatusCode, header: resp.Header, body: read}
	h.mu.Lock()
	h.log = append(h.log, ex)
	h.mu.Unlock()
	if c.want != 0 && ex.status != c.want {
		h.t.Errorf("%s: status %d, want %d; body %s", c.label, ex.status, c.want, read)
	}
	h.validate(c, ex)
	return ex
}

// validateSchema checks a JSON value against a schema of the document's
// components, as kin-openapi does for OpenAPI 3.1 bodies.
func (h *harness) validateSchema(label, schema string, data []byte) {
	h.t.Helper()
	ref := h.doc.Components.Schemas[schema]
	if ref == nil {
		h.t.Fatalf("no schema %s in the document", schema)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		h.t.Errorf("%s: not JSON: %v: %s", label, err, data)
		return
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
		h.t.Errorf("%s: does not follow schema %s: %v\n%s", label, schema, err, data)
	}
}
