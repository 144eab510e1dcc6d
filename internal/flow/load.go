package flow

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; minimal images lack a zoneinfo database

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// The layout of a project, relative to its root. DESIGN: one fixed layout
// rather than a configurable one, so a BAR, a checkout and the docs always
// agree on where things are.
const (
	ManifestFile = "sluice.yaml" // name, version, description
	FlowsDir     = "flows"       // one flow per *.yaml / *.yml file, subdirectories allowed
	SchemasDir   = "schemas"     // JSON Schemas (*.json, *.yaml), referenced by path from the project root
	JQDir        = "jq"          // jq modules: `import "orders" as o;` loads jq/orders.jq
	OpenAPIDir   = "openapi"     // OpenAPI documents of the APIs the flows serve
	StaticDir    = "static"      // static files, readable from jq with static("static/…")
	TestsDir     = "tests"       // `sluice flow test` fixtures (not loaded by Load)
)

// DefaultTimeout bounds a flow run when neither the flow nor the Config
// sets a timeout: a stuck flow must never hold a request forever.
const DefaultTimeout = 30 * time.Second

// maxFileSize bounds every project file the loader reads; a flow
// definition of megabytes is a mistake, not a use case.
const maxFileSize = 4 << 20

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func formatLoadError(e *LoadError) string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return e.Msg
}

// Validate loads the project in fsys without a Config, so credential
// resource names are not checked; `sluice bar build` uses it.
func Validate(ctx context.Context, fsys fs.FS) error {
	_, err := Load(ctx, fsys, nil)
	return err
}

// Flow returns the flow called name, or nil.
func (p *Project) Flow(name string) *Flow { return p.byName[name] }

// Pattern returns the trigger as a net/http ServeMux pattern, e.g.
// "POST /orders/{customer}".
func (t *HTTPTrigger) Pattern() string { return t.Method + " " + t.Path }

// Next returns the first activation time of the schedule after t.
func (t *ScheduleTrigger) Next(after time.Time) time.Time {
	if t.sched == nil {
		return time.Time{}
	}
	return t.sched.Next(after.In(t.Location))
}

// loader holds the state of one Load: the project's files, the Config and
// every problem found so far. It never stops at the first problem, so a
// developer fixes a project in one round trip.
type loader struct {
	ctx     context.Context
	fsys    fs.FS
	cfg     *Config
	errs    []*LoadError
	env     *jqEnv
	schemas *schemaSet
	budget  budget
}

func (l *loader) errAt(file string, n *yaml.Node, format string, args ...any) {
	e := &LoadError{File: file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) errPos(file string, line, col int, format string, args ...any) {
	l.errs = append(l.errs, &LoadError{File: file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

// Load reads the manifest and every flow of the project in fsys, compiles
// all of it and resolves every reference; all-or-nothing. Errors are
// *LoadError values (joined with errors.Join when there are several)
// naming file, line and column. cfg may be nil: credential references are
// then not checked and flows run with an empty configuration.
func Load(ctx context.Context, fsys fs.FS, cfg *Config) (p *Project, err error) {
	// The parser is fuzzed, but a panic on input nobody thought of must
	// still end as an error: a bad BAR may never take a runtime down.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("flow: internal error loading project: %v", r)
		}
	}()
	l := &loader{ctx: ctx, fsys: fsys, cfg: cfg}
	p = &Project{Files: fsys, byName: map[string]*Flow{}}

	// A broken manifest does not stop the loader: the flows are checked
	// too, so every problem shows up in one pass.
	l.readManifest(p)
	modules := l.loadModules()
	rt, err := newRuntimeEnv(fsys, cfg)
	if err != nil {
		return nil, err
	}
	l.env = &jqEnv{modules: modules, fsys: fsys, cfg: cfg}
	l.schemas = newSchemaSet(l)
	l.checkSchemas()
	p.OpenAPI = l.checkOpenAPI()
	p.Static = l.listFiles(StaticDir, nil)

	type parsed struct {
		f    *Flow
		node *yaml.Node // the flow's `flow:` value, for duplicate errors
	}
	var flows []parsed
	for _, file := range l.listFiles(FlowsDir, []string{".yaml", ".yml"}) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, node := l.parseFlowFile(file, rt)
		if f != nil {
			flows = append(flows, parsed{f, node})
		}
	}
	if len(flows) == 0 && len(l.errs) == 0 {
		l.errAt(FlowsDir, nil, "project has no flows (want %s/*.yaml)", FlowsDir)
	}

	// Names and routes must be unique across the project: the runtime
	// routes by them and `call` resolves by name.
	routes := map[string]*Flow{}
	mux := http.NewServeMux()
	for _, pf := range flows {
		f := pf.f
		if prev, ok := p.byName[f.Name]; ok {
			l.errAt(f.File, pf.node, "duplicate flow name %q (also defined in %s)", f.Name, prev.File)
			continue
		}
		p.byName[f.Name] = f
		p.Flows = append(p.Flows, f)
		if f.HTTP == nil {
			continue
		}
		key := f.HTTP.Method + " " + routeKey(f.HTTP.Path)
		if prev, ok := routes[key]; ok {
			l.errAt(f.File, f.prog.triggerNode, "duplicate route %s (also the trigger of flow %q in %s)", f.HTTP.Pattern(), prev.Name, prev.File)
			continue
		}
		routes[key] = f
		// ServeMux rejects patterns that overlap without one being more
		// specific (GET /a/{x} and GET /{y}/b); the runtime serves with
		// it, so the conflict is found here rather than as a panic there.
		if msg := tryRegister(mux, f.HTTP.Pattern()); msg != "" {
			l.errAt(f.File, f.prog.triggerNode, "route %s conflicts with another flow's route: %s", f.HTTP.Pattern(), msg)
		}
	}
	l.resolveCalls(p)

	if len(l.errs) > 0 {
		return nil, l.joined()
	}
	slices.SortFunc(p.Flows, func(a, b *Flow) int { return cmp.Compare(a.Name, b.Name) })
	return p, nil
}

func (l *loader) joined() error {
	slices.SortStableFunc(l.errs, func(a, b *LoadError) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if len(l.errs) == 1 {
		return l.errs[0]
	}
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func tryRegister(mux *http.ServeMux, pattern string) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = muxConflict(fmt.Sprint(r))
		}
	}()
	mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	return ""
}

var registeredAtRE = regexp.MustCompile(`\s*\(registered at [^)]*\)`)

// muxConflict shortens ServeMux's conflict panic to its explanation,
// without the Go source positions it names.
func muxConflict(msg string) string {
	msg = registeredAtRE.ReplaceAllString(msg, "")
	return strings.Join(strings.Fields(msg), " ")
}

// routeKey erases parameter names so /a/{x} and /a/{y} count as the same route.
func routeKey(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			if strings.HasSuffix(s, "...}") {
				segs[i] = "{...}"
			} else {
				segs[i] = "{}"
			}
		}
	}
	return strings.Join(segs, "/")
}

func (l *loader) readFile(name string) ([]byte, error) {
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("is a directory")
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if n > maxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", maxFileSize)
	}
	return buf.Bytes(), nil
}

// listFiles returns the regular files under dir (sorted), optionally only
// those with one of exts. A missing dir is not an error: every part of a
// project but the manifest and flows is optional.
func (l *loader) listFiles(dir string, exts []string) []string {
	var out []string
	err := fs.WalkDir(l.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipDir
			}
			l.errAt(p, nil, "cannot read: %v", err)
			return nil
		}
		// Dot files are editor and OS droppings (.#a.yaml, .DS_Store), not
		// part of the project.
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			l.errAt(p, nil, "not a regular file (symbolic links and devices are not allowed in a project)")
			return nil
		}
		if exts != nil && !slices.Contains(exts, path.Ext(p)) {
			return nil
		}
		out = append(out, p)
		return nil
	})
	if err != nil && !errors.Is(err, fs.SkipDir) {
		l.errAt(dir, nil, "cannot list: %v", err)
	}
	slices.Sort(out)
	return out
}

// parseYAML parses one YAML document and returns its root content node.
func (l *loader) parseYAML(file string, data []byte) *yaml.Node {
	if err := l.budget.document(data); err != nil {
		l.errAt(file, nil, "%v", err)
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errAt(file, nil, "file is empty")
			return nil
		}
		l.errPos(file, yamlErrLine(err), 0, "invalid YAML: %s", yamlErrMsg(err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errAt(file, &extra, "more than one YAML document in file")
		return nil
	}
	if len(doc.Content) == 0 {
		l.errAt(file, nil, "file is empty")
		return nil
	}
	if deep := yamlTooDeep(doc.Content[0]); deep != nil {
		l.errAt(file, deep, "nested more than %d deep", MaxDocumentDepth)
		return nil
	}
	if n := expandedSize(doc.Content[0], map[*yaml.Node]int{}, 0); n > maxExpandedNodes {
		l.errAt(file, nil, "document expands to more than %d nodes through aliases", maxExpandedNodes)
		return nil
	}
	return doc.Content[0]
}

// jsonErr reports a JSON file that does not decode, at the line of a
// nesting problem when that is what it is.
func (l *loader) jsonErr(file string, err error) {
	var de *jsonDepthError
	if errors.As(err, &de) {
		l.errPos(file, de.Line, de.Column, "invalid JSON: nested more than %d deep", MaxDocumentDepth)
		return
	}
	l.errAt(file, nil, "invalid JSON: %v", err)
}

// maxExpandedNodes bounds a document with its aliases expanded: the
// compiler walks aliases as copies, so nested aliases ("billion laughs")
// would otherwise make a small file cost exponential time.
const maxExpandedNodes = 100_000

func expandedSize(n *yaml.Node, memo map[*yaml.Node]int, depth int) int {
	if n == nil {
		return 0
	}
	if v, ok := memo[n]; ok {
		return v
	}
	if depth > 1000 {
		return maxExpandedNodes + 1
	}
	memo[n] = maxExpandedNodes + 1 // an alias cycle counts as too big
	size := 1
	if n.Kind == yaml.AliasNode {
		size += expandedSize(n.Alias, memo, depth+1)
	}
	for _, c := range n.Content {
		size += expandedSize(c, memo, depth+1)
		if size > maxExpandedNodes {
			break
		}
	}
	memo[n] = size
	return size
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

func yamlErrLine(err error) int {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n := 0
	fmt.Sscan(m[1], &n)
	return n
}

func yamlErrMsg(err error) string {
	s := err.Error()
	if m := yamlLineRE.FindString(s); m != "" {
		return s[len(m):]
	}
	return strings.TrimPrefix(s, "yaml: ")
}

func (l *loader) readManifest(p *Project) {
	data, err := l.readFile(ManifestFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			l.errAt(ManifestFile, nil, "missing project manifest (want name, version, description)")
		} else {
			l.errAt(ManifestFile, nil, "cannot read: %v", err)
		}
		return
	}
	root := l.parseYAML(ManifestFile, data)
	if root == nil {
		return
	}
	m := l.mapping(ManifestFile, root, "manifest", "name", "version", "description")
	if m == nil {
		return
	}
	if n := m.get("name"); n == nil {
		l.errAt(ManifestFile, root, "manifest has no name")
	} else if s, ok := l.str(ManifestFile, n, "name"); ok {
		if !nameRE.MatchString(s) {
			l.errAt(ManifestFile, n, "invalid project name %q (want letters, digits, '.', '_', '-'; at most 64)", s)
		}
		p.Name = s
	}
	if n := m.get("version"); n != nil {
		p.Version, _ = l.str(ManifestFile, n, "version")
	}
	if n := m.get("description"); n != nil {
		p.Description, _ = l.str(ManifestFile, n, "description")
	}
}

// checkOpenAPI parses each OpenAPI document so a broken one is found at
// build time; the engine does not interpret them.
func (l *loader) checkOpenAPI() []string {
	files := l.listFiles(OpenAPIDir, []string{".yaml", ".yml", ".json"})
	for _, f := range files {
		data, err := l.readFile(f)
		if err != nil {
			l.errAt(f, nil, "cannot read: %v", err)
			continue
		}
		root := l.parseYAML(f, data)
		if root == nil {
			continue
		}
		m := l.mapping(f, root, "OpenAPI document")
		if m != nil && m.get("openapi") == nil && m.get("swagger") == nil {
			l.errAt(f, root, "not an OpenAPI document (no openapi field)")
		}
	}
	return files
}

// parseFlowFile parses and compiles one flow definition.
func (l *loader) parseFlowFile(file string, rt *runtimeEnv) (*Flow, *yaml.Node) {
	data, err := l.readFile(file)
	if err != nil {
		l.errAt(file, nil, "cannot read: %v", err)
		return nil, nil
	}
	root := l.parseYAML(file, data)
	if root == nil {
		return nil, nil
	}
	m := l.mapping(file, root, "flow", "flow", "description", "trigger", "timeout", "steps")
	if m == nil {
		return nil, nil
	}
	f := &Flow{File: file, prog: &program{rt: rt}}
	nameNode := m.get("flow")
	if nameNode == nil {
		l.errAt(file, root, "missing field flow (the flow's name)")
	} else if s, ok := l.str(file, nameNode, "flow"); ok {
		if !nameRE.MatchString(s) {
			l.errAt(file, nameNode, "invalid flow name %q (want letters, digits, '.', '_', '-'; at most 64)", s)
		}
		f.Name = s
	}
	f.prog.flow = f
	if n := m.get("description"); n != nil {
		f.Description, _ = l.str(file, n, "description")
	}
	c := &compiler{l: l, file: file, flow: f, lines: strings.Split(string(data), "\n")}
	if n := m.get("trigger"); n != nil {
		l.parseTrigger(c, n, f)
	}
	f.Timeout = DefaultTimeout
	if l.cfg != nil && l.cfg.Timeout > 0 {
		f.Timeout = l.cfg.Timeout
	}
	if n := m.get("timeout"); n != nil {
		if d, ok := l.duration(file, n, "timeout"); ok {
			f.Timeout = d
		}
	}
	if f.NATS != nil {
		c.checkAckWait(f, f.prog.triggerNode)
	}
	if n := m.get("steps"); n == nil {
		l.errAt(file, root, "flow has no steps")
	} else {
		f.prog.steps = c.steps(n, "")
	}
	if f.Name == "" {
		return nil, nil
	}
	return f, nameNode
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// triggerKinds lists the triggers a flow may have.
var triggerKinds = []string{"http", "schedule", "nats", "amqp", "mqtt", "kafka", "file"}

func (l *loader) parseTrigger(c *compiler, n *yaml.Node, f *Flow) {
	file := c.file
	m := l.mapping(file, n, "trigger", triggerKinds...)
	if m == nil {
		return
	}
	f.prog.triggerNode = n
	if len(m.keys) != 1 {
		l.errAt(file, n, "trigger needs exactly one of %s", strings.Join(triggerKinds, ", "))
		return
	}
	if nn := m.get("nats"); nn != nil {
		f.prog.triggerNode = nn
		f.NATS = c.natsTrigger(nn)
		return
	}
	if an := m.get("amqp"); an != nil {
		f.prog.triggerNode = an
		f.AMQP = c.amqpTrigger(an)
		return
	}
	if qn := m.get("mqtt"); qn != nil {
		f.prog.triggerNode = qn
		f.MQTT = c.mqttTrigger(qn)
		return
	}
	if kn := m.get("kafka"); kn != nil {
		f.prog.triggerNode = kn
		f.Kafka = c.kafkaTrigger(kn)
		return
	}
	if fn := m.get("file"); fn != nil {
		f.prog.triggerNode = fn
		f.Directory = c.fileTrigger(fn)
		return
	}
	if h := m.get("http"); h != nil {
		f.prog.triggerNode = h
		hm := l.mapping(file, h, "http trigger", "method", "path")
		if hm == nil {
			return
		}
		t := &HTTPTrigger{Method: "GET"}
		if mn := hm.get("method"); mn != nil {
			if s, ok := l.str(file, mn, "method"); ok {
				t.Method = strings.ToUpper(s)
				if !slices.Contains(methods, t.Method) {
					l.errAt(file, mn, "unsupported method %q (want one of %s)", s, strings.Join(methods, ", "))
				}
			}
		}
		pn := hm.get("path")
		if pn == nil {
			l.errAt(file, h, "http trigger has no path")
			return
		}
		if s, ok := l.str(file, pn, "path"); ok {
			if msg := checkPathTemplate(s); msg != "" {
				l.errAt(file, pn, "invalid path template %q: %s", s, msg)
			}
			t.Path = s
		}
		f.HTTP = t
		return
	}
	s := m.get("schedule")
	f.prog.triggerNode = s
	sm := l.mapping(file, s, "schedule trigger", "cron", "timezone")
	if sm == nil {
		return
	}
	t := &ScheduleTrigger{Location: time.UTC}
	cn := sm.get("cron")
	if cn == nil {
		l.errAt(file, s, "schedule trigger has no cron")
		return
	}
	if spec, ok := l.str(file, cn, "cron"); ok {
		t.Cron = spec
		if strings.Contains(spec, "TZ=") {
			l.errAt(file, cn, "cron must not name a time zone; use the timezone field")
		} else if sched, err := cron.ParseStandard(spec); err != nil {
			l.errAt(file, cn, "invalid cron expression %q: %v", spec, err)
		} else {
			t.sched = sched
		}
	}
	if tz := sm.get("timezone"); tz != nil {
		if name, ok := l.str(file, tz, "timezone"); ok {
			loc, err := time.LoadLocation(name)
			if err != nil || name == "" || name == "Local" {
				l.errAt(file, tz, "unknown time zone %q", name)
			} else {
				t.Location = loc
			}
		}
	}
	f.Schedule = t
}

// checkPathTemplate enforces the subset of ServeMux path patterns flows
// may use: absolute, clean, {name} segments, and {name...} last.
func checkPathTemplate(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "must start with /"
	}
	if strings.ContainsAny(p, "?# \t") {
		return "must not contain a query, fragment or spaces"
	}
	segs := strings.Split(p[1:], "/")
	seen := map[string]bool{}
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return "must be a clean path (no empty, . or .. segments)"
		}
		if !strings.ContainsAny(s, "{}") {
			continue
		}
		if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
			return fmt.Sprintf("segment %q: a parameter must be a whole segment", s)
		}
		name := s[1 : len(s)-1]
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			if i != len(segs)-1 {
				return fmt.Sprintf("segment %q: {name...} must be the last segment", s)
			}
			name = rest
		}
		if !identRE.MatchString(name) {
			return fmt.Sprintf("segment %q: parameter name must be an identifier", s)
		}
		if seen[name] {
			return fmt.Sprintf("parameter %q appears twice", name)
		}
		seen[name] = true
	}
	return ""
}

// resolveCalls links call steps to their flows and refuses cycles, which
// would otherwise recurse until the flow's timeout.
func (l *loader) resolveCalls(p *Project) {
	edges := map[*Flow][]*callStep{}
	for _, f := range p.Flows {
		for _, cs := range f.prog.calls {
			target := p.byName[cs.target]
			if target == nil {
				l.errAt(f.File, cs.node, "call: no flow named %q in this project", cs.target)
				continue
			}
			cs.flow = target
			edges[f] = append(edges[f], cs)
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[*Flow]int{}
	var stack []*Flow
	var visit func(f *Flow)
	visit = func(f *Flow) {
		state[f] = visiting
		stack = append(stack, f)
		for _, cs := range edges[f] {
			switch state[cs.flow] {
			case visiting:
				i := slices.Index(stack, cs.flow)
				names := make([]string, 0, len(stack)-i+1)
				for _, g := range stack[i:] {
					names = append(names, g.Name)
				}
				names = append(names, cs.flow.Name)
				l.errAt(f.File, cs.node, "call cycle: %s", strings.Join(names, " -> "))
			case unvisited:
				visit(cs.flow)
			}
		}
		stack = stack[:len(stack)-1]
		state[f] = done
	}
	for _, f := range p.Flows {
		if state[f] == unvisited {
			visit(f)
		}
	}
}

// normalizeJSON turns any Go value into the types gojq and jsonschema
// accept (map[string]any, []any, string, float64/json.Number, bool, nil)
// by a JSON round trip.
func normalizeJSON(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
