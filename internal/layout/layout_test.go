package layout

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/saas-exporter/saas_exporter/"

// root is the repository's top directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod two levels up from internal/layout: %v", err)
	}
	return dir
}

// packages maps each package directory of the module (relative, slash
// separated) to its non-test imports within the module.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	top := root(t)
	out := map[string][]string{}
	err := filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != top && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(top, path)
		var own []string
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				own = append(own, strings.TrimPrefix(imp, module))
			}
		}
		out[filepath.ToSlash(rel)] = own
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vendorPkg reports whether pkg is one vendor's package, provider/<vendor>.
func vendorPkg(pkg string) bool {
	rest, ok := strings.CutPrefix(pkg, "provider/")
	return ok && !strings.Contains(rest, "/") && rest != "oauth" && rest != "providertest"
}

// The import rules of the README's "Repository layout": each package
// imports only what sits below it.
func TestImportsRunOneWay(t *testing.T) {
	pkgs := packages(t)
	for _, must := range []string{"store", "config", "provider", "provider/oauth", "collector", "auth", "auth/session", "auth/connect", "auth/api", "auth/ui", "cmd/saas_exporter"} {
		if _, ok := pkgs[must]; !ok {
			t.Fatalf("package %s not found; the layout changed without this test", must)
		}
	}
	forbidden := func(pkg, imp string) string {
		switch {
		case pkg == "store" || pkg == "config":
			if imp != "internal/citest" {
				return "store and config import no other package of the exporter"
			}
		case pkg == "provider":
			return "provider is the interface a vendor sees; it imports nothing of the exporter (its Connection is a view, not the store's record)"
		case pkg == "provider/oauth":
			if imp != "provider" && imp != "config" && imp != "store" {
				return "provider/oauth is a library for providers: provider, config and store's locking only"
			}
		case vendorPkg(pkg):
			if imp != "provider" && imp != "provider/oauth" && imp != "config" {
				return "a vendor package imports provider, provider/oauth and config only: no storage model, no engine, no web side, no other vendor"
			}
		case pkg == "collector":
			if imp != "provider" && imp != "store" {
				return "the engine knows providers and the store, never a vendor or the web side"
			}
		case (pkg == "auth" || strings.HasPrefix(pkg, "auth/")) && (vendorPkg(imp) || imp == "provider/oauth" || strings.HasPrefix(imp, "cmd/")):
			return "the web side never names a vendor"
		case pkg == "auth/session":
			if imp != "store" {
				return "auth/session (who is signed in) imports store only: sessions know nothing of connections, pages or the API"
			}
		case pkg == "auth/connect":
			if imp != "auth/session" && imp != "provider" && imp != "store" && imp != "collector" {
				return "auth/connect (what connecting means) sits below the pages and the API: it imports auth/session, provider, store and collector only"
			}
		case pkg == "auth/api":
			if imp != "auth/connect" && imp != "auth/session" && imp != "provider" && imp != "store" && imp != "collector" {
				return "auth/api renders connect's operations as JSON: never the HTML pages (auth/ui)"
			}
		case pkg == "auth/ui":
			if imp != "auth/connect" && imp != "auth/session" && imp != "provider" && imp != "store" && imp != "collector" {
				return "auth/ui renders connect's operations as pages: never the JSON API (auth/api)"
			}
		case pkg == "auth":
			if !strings.HasPrefix(imp, "auth/") && imp != "provider" && imp != "store" {
				return "auth only wires its subpackages (and takes providers and a store in its Options)"
			}
		case strings.HasPrefix(pkg, "auth/"):
			return "a new package under auth/ needs its own rule here"
		}
		return ""
	}
	for pkg, imps := range pkgs {
		for _, imp := range imps {
			if why := forbidden(pkg, imp); why != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, why)
			}
		}
	}
}

// Fixed tables (label values, regions, states) are not exported mutable
// variables: another package could change them for everyone.
func TestNoExportedMutableTables(t *testing.T) {
	top := root(t)
	pkgs := packages(t)
	var dirs []string
	for pkg := range pkgs {
		if pkg == "store" || pkg == "collector" || pkg == "config" || pkg == "auth" || strings.HasPrefix(pkg, "auth/") || pkg == "provider" || strings.HasPrefix(pkg, "provider/") {
			dirs = append(dirs, pkg)
		}
	}
	slices.Sort(dirs)
	for _, pkg := range dirs {
		fset := token.NewFileSet()
		files, _ := filepath.Glob(filepath.Join(top, pkg, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range af.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.VAR {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if !n.IsExported() {
							continue
						}
						if table(vs, i) {
							t.Errorf("%s: exported variable %s is a slice, array or map; make it unexported or a function", fset.Position(n.Pos()), n.Name)
						} else if i < len(vs.Values) {
							if _, ok := vs.Values[i].(*ast.CompositeLit); ok {
								t.Errorf("%s: exported variable %s is a composite value another package could change; make it a function", fset.Position(n.Pos()), n.Name)
							}
						}
					}
				}
			}
		}
	}
}

// table reports whether the i-th variable of vs is a slice, array or map
// (by its declared type or its composite literal).
func table(vs *ast.ValueSpec, i int) bool {
	kind := func(e ast.Expr) bool {
		switch e.(type) {
		case *ast.ArrayType, *ast.MapType:
			return true
		}
		return false
	}
	if vs.Type != nil {
		return kind(vs.Type)
	}
	if i < len(vs.Values) {
		if cl, ok := vs.Values[i].(*ast.CompositeLit); ok {
			return kind(cl.Type)
		}
		if call, ok := vs.Values[i].(*ast.CallExpr); ok {
			// append(...) and slices.Clone(...) build slices.
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "append" {
				return true
			}
		}
	}
	return false
}
