package flow

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports holds the package's boundary: the engine knows nothing of
// the runtime, the API, the store or BAR archives; of Sluice it uses only
// the secret type and jqjson's JSON codec of jq values (a leaf package
// that imports nothing of Sluice).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	hasDoc := false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package flow ") {
			hasDoc = true
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/sluice-dev/sluice/") && p != "github.com/sluice-dev/sluice/internal/secret" && p != "github.com/sluice-dev/sluice/internal/jqjson" {
				t.Errorf("%s imports %s: the flow engine must not depend on other Sluice packages", name, p)
			}
		}
	}
	if !hasDoc {
		t.Error("package flow has no doc comment")
	}
	if _, err := os.Stat("todo_engine.go"); err == nil {
		t.Error("the placeholder todo_engine.go is back")
	}
}
