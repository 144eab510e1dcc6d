package conventions

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// wallClockAllowed lists the places in clocked packages that may read the
// machine's clock, each with the reason it decides nothing a test clock
// should drive. Keys are "package-dir:function".
var wallClockAllowed = map[string]string{
	"internal/store:nextVersion": "resource versions only need to grow; watchers compare them for change, never against a clock",
	"internal/store:migrate":     "records when a migration ran, for operators; decides nothing",
	"internal/store:sync": "the PostgreSQL barrier's socket deadline: a net.Conn deadline is a wall-clock instant, " +
		"and it only bounds how long a database that stopped answering can hold a run",
	"internal/store:close": "the socket deadline of the barrier connection's goodbye: a net.Conn deadline is a wall-clock instant",
	"internal/orchestrator/local:stopAll": "a blocking wait on real processes that sleeps in real time: its deadline must pass in " +
		"real time, or closing a backend under a stopped test clock would never kill a stuck child",
}

// alwaysClocked are packages that must take the time from their callers
// even without importing internal/clock: the store never decides with the
// machine's clock (issue: a test clock's revocation pruned by the wall).
var alwaysClocked = map[string]bool{"internal/store": true}

// TestClockedPackagesUseTheirClock fails when a package that has an
// injected clock (it imports internal/clock) reads the machine's clock
// directly: time.Now, time.Since and time.Until, called or passed as a
// value. Where a fake clock and the wall clock meet, a test passes today
// and fails on a later date.
func TestClockedPackagesUseTheirClock(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	type use struct{ pkg, fn, pos string }
	var uses []use
	clocked := map[string]bool{}
	for k := range alwaysClocked {
		clocked[k] = true
	}
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		pkg, _ := filepath.Rel(root, filepath.Dir(path))
		pkg = filepath.ToSlash(pkg)
		if pkg == "internal/clock" || strings.HasPrefix(pkg, "internal/clock/") {
			return nil // the clock's own definition
		}
		timeName := ""
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch p {
			case module + "/internal/clock":
				clocked[pkg] = true
			case "time":
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		if timeName == "" {
			return nil
		}
		for _, decl := range f.Decls {
			fn := "(package level)"
			if fd, ok := decl.(*ast.FuncDecl); ok {
				fn = fd.Name.Name
			}
			ast.Inspect(decl, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName && id.Obj == nil {
					switch sel.Sel.Name {
					case "Now", "Since", "Until":
						rel, _ := filepath.Rel(root, path)
						uses = append(uses, use{pkg: pkg, fn: fn, pos: rel + ":" + strconv.Itoa(fset.Position(sel.Pos()).Line)})
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	seen := map[string]bool{}
	for _, u := range uses {
		if !clocked[u.pkg] {
			continue
		}
		key := u.pkg + ":" + u.fn
		if _, ok := wallClockAllowed[key]; ok {
			seen[key] = true
			continue
		}
		bad = append(bad, u.pos+" ("+key+")")
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s reads the machine's clock in a package with an injected clock: use the package's clock (internal/clock), or allow-list it with a reason", b)
	}
	for key := range wallClockAllowed {
		if !seen[key] {
			t.Errorf("allow-list entry %q matches no use any more: remove it", key)
		}
	}
}
