package conformance

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	apispec "github.com/sluice-dev/sluice/api"
)

// routeTable reads the route patterns of internal/api/api.go from its
// source (see routesIn).
func routeTable(t *testing.T) []string {
	return routesIn(t, "api/api.go", "Handler", 10)
}

// routeTableOf reads the route table of the Handler function in
// internal/<pkg>/<file> (see routesIn).
func routeTableOf(t *testing.T, pkg, file string) []string {
	t.Helper()
	return routesIn(t, pkg+"/"+file, "Handler", 10)
}

// routesIn reads the route patterns of function fn in file (relative to
// internal/) from its source: every string given to mux.Handle or
// mux.HandleFunc. Patterns may be built in a loop over a slice of struct
// literals (as the users and service-ids routes are); the evaluator below
// folds exactly those forms and fails on anything else, so a new way of
// building routes makes this test fail loudly instead of silently skipping
// routes. Fewer than atLeast routes means the parser lost track.
func routesIn(t *testing.T, file, fn string, atLeast int) []string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(self), "..", filepath.FromSlash(file))
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, d := range f.Decls {
		if f, ok := d.(*ast.FuncDecl); ok {
			funcs[f.Name.Name] = f
		}
	}
	var routes []string
	var visit func(n ast.Node, env map[string]map[string]string)
	visit = func(n ast.Node, env map[string]map[string]string) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.RangeStmt:
				// for _, c := range []struct{ a, b string }{{"x", "y"}, …} { … }
				elems, err := rangeLiterals(n)
				if err != nil {
					t.Fatalf("%s: %v", fset.Position(n.Pos()), err)
				}
				v, ok := n.Value.(*ast.Ident)
				if !ok {
					t.Fatalf("%s: range without a value variable", fset.Position(n.Pos()))
				}
				for _, e := range elems {
					inner := map[string]map[string]string{}
					for k, vv := range env {
						inner[k] = vv
					}
					inner[v.Name] = e
					visit(n.Body, inner)
				}
				return false
			case *ast.ExprStmt:
				// a.runtimeRoutes(mux): a part of the table in a function
				// of its own (served alone elsewhere too) is read there.
				call, ok := n.X.(*ast.CallExpr)
				if !ok || len(call.Args) != 1 {
					return true
				}
				sel, isSel := call.Fun.(*ast.SelectorExpr)
				arg, isIdent := call.Args[0].(*ast.Ident)
				if !isSel || !isIdent || arg.Name != "mux" {
					return true
				}
				if part := funcs[sel.Sel.Name]; part != nil && takesMux(part) {
					visit(part.Body, env)
					return false
				}
				return true
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "mux" || len(n.Args) != 2 {
					return true
				}
				p, err := evalString(n.Args[0], env)
				if err != nil {
					t.Fatalf("%s: cannot read the route pattern: %v", fset.Position(n.Pos()), err)
				}
				routes = append(routes, p)
			}
			return true
		})
	}
	if f := funcs[fn]; f != nil {
		visit(f.Body, map[string]map[string]string{})
	}
	if len(routes) < atLeast {
		t.Fatalf("found only %d routes in %s; the parser no longer understands the route table", len(routes), path)
	}
	return routes
}

// takesMux says whether fn's one parameter is a *http.ServeMux: a part of
// a route table.
func takesMux(fn *ast.FuncDecl) bool {
	ps := fn.Type.Params.List
	if len(ps) != 1 {
		return false
	}
	star, ok := ps[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "ServeMux"
}

// rangeLiterals returns the elements of `range []struct{…}{{…}, …}` as
// field name → string value.
func rangeLiterals(n *ast.RangeStmt) ([]map[string]string, error) {
	lit, ok := n.X.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("range over something other than a literal")
	}
	at, ok := lit.Type.(*ast.ArrayType)
	if !ok {
		return nil, fmt.Errorf("range over a literal that is not a slice")
	}
	st, ok := at.Elt.(*ast.StructType)
	if !ok {
		return nil, fmt.Errorf("range over a slice of something other than struct literals")
	}
	var fields []string
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			fields = append(fields, n.Name)
		}
	}
	var out []map[string]string
	for _, e := range lit.Elts {
		cl, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("slice element is not a struct literal")
		}
		m := map[string]string{}
		for i, v := range cl.Elts {
			name := ""
			if kv, ok := v.(*ast.KeyValueExpr); ok {
				name, v = kv.Key.(*ast.Ident).Name, kv.Value
			} else if i < len(fields) {
				name = fields[i]
			}
			// Non-string fields (such as store.KindUser) are not needed
			// for patterns; they stay unknown.
			if s, err := evalString(v, nil); err == nil {
				m[name] = s
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// evalString folds string literals, + and fields of range variables.
func evalString(e ast.Expr, env map[string]map[string]string) (string, error) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", fmt.Errorf("not a string literal")
		}
		return strconv.Unquote(e.Value)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", fmt.Errorf("operator %s", e.Op)
		}
		l, err := evalString(e.X, env)
		if err != nil {
			return "", err
		}
		r, err := evalString(e.Y, env)
		return l + r, err
	case *ast.ParenExpr:
		return evalString(e.X, env)
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if fields, ok := env[x.Name]; ok {
				if v, ok := fields[e.Sel.Name]; ok {
					return v, nil
				}
			}
		}
	}
	return "", fmt.Errorf("expression %T is not a constant string", e)
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// normalise makes "GET /api/v1/users/{name}" and the document's
// "GET /api/v1/users/{name}" comparable whatever the wildcard names.
func normalise(method, path string) string {
	return strings.ToUpper(method) + " " + wildcard.ReplaceAllString(path, "{}")
}

// TestEveryRouteIsDocumented holds each route table and its document to
// each other: an endpoint added without documenting it, or documented
// without routing it, fails here. The adapters of other tools' wires have
// their own tables and documents.
func TestEveryRouteIsDocumented(t *testing.T) {
	for _, c := range []struct {
		file, fn, docName string
		doc               []byte
		atLeast           int
	}{
		{"api/api.go", "Handler", "api/openapi.yaml", apispec.YAML(), 10},
		{"airbyte/airbyte.go", "Routes", "api/airbyte.yaml", apispec.AirbyteYAML(), 9},
		{"ibmiam/ibmiam.go", "Routes", "api/ibm-iam.yaml", apispec.IBMIAMYAML(), 1},
	} {
		t.Run(c.docName, func(t *testing.T) {
			doc, _ := loadDocFrom(t, c.doc, "http://127.0.0.1:1")
			checkRoutesDocumented(t, routesIn(t, c.file, c.fn, c.atLeast), operations(doc), "internal/"+c.file, c.docName)
		})
	}
}

func checkRoutesDocumented(t *testing.T, table, ops []string, file, docName string) {
	documented := map[string]bool{}
	for _, op := range ops {
		m, p, _ := strings.Cut(op, " ")
		documented[normalise(m, p)] = true
	}
	routed := map[string]bool{}
	t.Logf("%d routes in %s, %d operations documented", len(table), file, len(documented))
	for _, r := range table {
		method, path, ok := strings.Cut(r, " ")
		if !ok {
			if r == "/" {
				continue // the catch-all that answers 404 for everything else
			}
			t.Errorf("route %q has no method: it answers every method, which the document cannot describe", r)
			continue
		}
		key := normalise(method, path)
		routed[key] = true
		if !documented[key] {
			t.Errorf("route %q is not in %s", r, docName)
		}
	}
	var missing []string
	for op := range documented {
		if !routed[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	for _, op := range missing {
		t.Errorf("%s documents %s, which %s does not route", docName, op, file)
	}
}
