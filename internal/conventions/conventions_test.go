// Package conventions holds tests that keep the codebase's conventions:
// every package says what it owns in a doc comment, and layers do not
// import what they must not.
package conventions

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/sluice-dev/sluice"

// packages maps each package directory (relative to the module root) to
// the imports of its non-test files and whether it has a doc comment.
type pkgInfo struct {
	imports map[string]bool
	doc     bool
	files   int
}

func loadPackages(t *testing.T) map[string]*pkgInfo {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]*pkgInfo{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		p := pkgs[rel]
		if p == nil {
			p = &pkgInfo{imports: map[string]bool{}}
			pkgs[rel] = p
		}
		p.files++
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			p.doc = true
		}
		for _, imp := range f.Imports {
			p.imports[strings.Trim(imp.Path.Value, `"`)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if !p.doc {
			t.Errorf("package %s has no doc comment saying what it owns", dir)
		}
	}
}

// Layers: the flow engine and the BAR format know nothing of the control
// plane; the store knows nothing of HTTP; the public client depends on no
// internal package.
func TestForbiddenImports(t *testing.T) {
	rules := []struct {
		pkgPrefix string
		forbidden []string
	}{
		{"internal/flow", []string{module + "/internal/api", module + "/internal/server", module + "/internal/runtime", module + "/internal/store", module + "/internal/iam"}},
		{"internal/bar", []string{module + "/internal/api", module + "/internal/server", module + "/internal/store", module + "/internal/iam"}},
		{"internal/store", []string{module + "/internal/api", module + "/internal/iam", module + "/internal/server", "net/http"}},
		{"internal/secret", []string{module + "/internal/"}},
		{"internal/iam", []string{module + "/internal/api", module + "/internal/server", "net/http"}},
		{"client", []string{module + "/internal/"}},
		// Other tools' wires are adapters over the services: they reach
		// neither the /api/v1 layer nor each other, and the HTTP helpers
		// they share know no domain.
		{"internal/airbyte", []string{module + "/internal/api", module + "/internal/server", module + "/internal/ibmiam"}},
		{"internal/ibmiam", []string{module + "/internal/api", module + "/internal/server", module + "/internal/airbyte", module + "/internal/store"}},
		{"internal/wire", []string{module + "/internal/"}},
	}
	for dir, p := range loadPackages(t) {
		dir = filepath.ToSlash(dir)
		for _, r := range rules {
			if dir != r.pkgPrefix && !strings.HasPrefix(dir, r.pkgPrefix+"/") {
				continue
			}
			for imp := range p.imports {
				for _, f := range r.forbidden {
					if imp == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f)) {
						t.Errorf("%s imports %s, which it must not", dir, imp)
					}
				}
			}
		}
	}
}
