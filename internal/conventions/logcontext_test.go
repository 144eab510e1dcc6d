package conventions

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// requestPackages serve HTTP requests of the control plane: what they log
// happens during a request, so it is logged with the request's context
// and carries its request_id (obs adds it to every *Context call).
var requestPackages = []string{"internal/api", "internal/web", "internal/apic", "internal/airbyte", "internal/ibmiam"}

// TestRequestHandlersLogWithTheirContext fails when a request package
// calls Debug, Info, Warn or Error on a logger instead of their *Context
// forms, which would drop the request id from the line.
func TestRequestHandlersLogWithTheirContext(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range requestPackages {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch sel.Sel.Name {
				case "Debug", "Info", "Warn", "Error":
				default:
					return true
				}
				// x.Log.Warn(…) or log.Warn(…): a logger, by the names this codebase gives them.
				isLogger := false
				switch x := sel.X.(type) {
				case *ast.SelectorExpr:
					isLogger = x.Sel.Name == "Log" || x.Sel.Name == "log"
				case *ast.Ident:
					isLogger = x.Name == "log" || x.Name == "logger"
				}
				if isLogger {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s:%s: %s without the request's context; use %sContext(r.Context(), …)",
						rel, strconv.Itoa(fset.Position(call.Pos()).Line), sel.Sel.Name, sel.Sel.Name)
				}
				return true
			})
		}
	}
	if _, err := os.Stat(filepath.Join(root, "internal/api")); err != nil {
		t.Fatal(err)
	}
}
