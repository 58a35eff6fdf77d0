package repocheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// raceExempt are the packages with goroutines that make test-race leaves
// out on purpose, and why.
var raceExempt = map[string]string{
	"e2e": "drives the caisson binary, which the race detector would not watch; its harness's goroutines only wait for processes",
}

// maxFuzzTime bounds one target's run, so that make fuzz stays short.
const maxFuzzTime = 30 * time.Second

// pkg is what the tests need to know of one package directory.
type pkg struct {
	fuzz       []string // fuzz targets, in its _test.go files
	goroutines bool     // a go statement in any of its files
	tests      bool     // it has _test.go files
}

// root is the module's root: the nearest directory above this one that
// holds go.mod.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = up
	}
}

// packages parses every Go file of the module under root, by directory
// relative to root ("." for the root). Hidden directories, testdata and
// bin are skipped, as the go command skips the first two.
func packages(t *testing.T, root string) map[string]*pkg {
	t.Helper()
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		p := pkgs[filepath.ToSlash(rel)]
		if p == nil {
			p = &pkg{}
			pkgs[filepath.ToSlash(rel)] = p
		}
		test := strings.HasSuffix(name, "_test.go")
		p.tests = p.tests || test
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && test && isFuzz(fn) {
				p.fuzz = append(p.fuzz, fn.Name.Name)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if _, ok := n.(*ast.GoStmt); ok {
				p.goroutines = true
			}
			return !p.goroutines
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// isFuzz reports whether fn is a fuzz target as go test finds them:
// FuzzXxx (Xxx not starting with a lower-case letter) taking one
// *testing.F.
func isFuzz(fn *ast.FuncDecl) bool {
	name := fn.Name.Name
	if fn.Recv != nil || !strings.HasPrefix(name, "Fuzz") {
		return false
	}
	if r, _ := utf8.DecodeRuneInString(name[len("Fuzz"):]); unicode.IsLower(r) {
		return false
	}
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "F" && fmt.Sprint(sel.X) == "testing"
}

// recipe returns the commands of a Makefile target (see recipeOf), and
// fails the test when it has none.
func recipe(t *testing.T, makefile, target string) []string {
	t.Helper()
	cmds, err := recipeOf(makefile, target)
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

// recipeOf returns the commands of a Makefile target, one per command with
// continued lines joined, comments left out. As make does, it reads on
// over blank lines and make's own comment lines (a "#" not after a tab)
// among the recipe's lines; any other line not starting with a tab ends
// the recipe.
func recipeOf(makefile, target string) ([]string, error) {
	var cmds []string
	in := false
	cont := false
	for _, line := range strings.Split(makefile, "\n") {
		switch {
		case !in && strings.HasPrefix(line, target+":"):
			in = true
			continue
		case !in:
			continue
		case cont:
			// A continued command goes on whatever the line starts with.
		case strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#"):
			// Blank, or a comment: make's (no tab) or the shell's (a tab).
			continue
		case !strings.HasPrefix(line, "\t"):
			return nonEmpty(cmds, target)
		}
		line = strings.TrimSpace(line)
		text := strings.TrimSuffix(line, "\\")
		if cont {
			cmds[len(cmds)-1] += " " + text
		} else {
			cmds = append(cmds, text)
		}
		cont = strings.HasSuffix(line, "\\")
	}
	if !in {
		return nil, fmt.Errorf("the Makefile has no target %s", target)
	}
	return nonEmpty(cmds, target)
}

func nonEmpty(cmds []string, target string) ([]string, error) {
	if len(cmds) == 0 {
		return nil, fmt.Errorf("the Makefile's target %s has no commands", target)
	}
	return cmds, nil
}

// pkgArgs are the package directories a command names ("./x/" → "x").
func pkgArgs(cmd string) []string {
	var dirs []string
	for _, f := range strings.Fields(cmd) {
		if strings.HasPrefix(f, "./") {
			dirs = append(dirs, strings.TrimSuffix(strings.TrimPrefix(f, "./"), "/"))
		}
	}
	return dirs
}

// flagArg returns the value of -name in a command, unquoted, with make's
// $$ read as $.
// A flag without a value (the last word) is not found.
func flagArg(cmd, name string) (string, bool) {
	fields := strings.Fields(cmd)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-"+name {
			return strings.ReplaceAll(strings.Trim(fields[i+1], `'"`), "$$", "$"), true
		}
	}
	return "", false
}

func readMakefile(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRecipeOf: a recipe is read as make reads it, over blank lines and
// comments among its lines, to the first other line without a tab.
func TestRecipeOf(t *testing.T) {
	for _, tc := range []struct {
		name, makefile string
		want           []string
		wantErr        bool
	}{
		{"plain", "fuzz:\n\ta\n\tb\nnext:\n\tc\n", []string{"a", "b"}, false},
		{"blank lines inside", "fuzz: deps\n\ta\n\n   \n\tb\n\nnext:\n\tc\n", []string{"a", "b"}, false},
		{"make comment inside", "fuzz:\n\ta\n# about b\n  # indented\n\tb\n", []string{"a", "b"}, false},
		{"shell comment and empty line", "fuzz:\n\t# about a\n\ta\n\t\n\tb\n", []string{"a", "b"}, false},
		{"continued", "fuzz:\n\ta \\\n\t  -x \\\n  -y\n\tb\n", []string{"a  -x  -y", "b"}, false},
		{"ends at a variable", "fuzz:\n\ta\nX = 1\n\tb\n", []string{"a"}, false},
		{"ends at the end", "x:\n\tz\nfuzz:\n\ta\n\n", []string{"a"}, false},
		{"no such target", "fuzzy:\n\ta\n", nil, true},
		{"no commands", "fuzz:\n\nnext:\n\tc\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recipeOf(tc.makefile, "fuzz")
			if (err != nil) != tc.wantErr {
				t.Fatalf("recipeOf: %v, want an error: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlagArg: a flag's value, unquoted, $$ read as $; a flag with no
// value, or no command at all, gives none.
func TestFlagArg(t *testing.T) {
	type result struct {
		Value string
		OK    bool
	}
	for _, tc := range []struct {
		cmd  string
		want result
	}{
		{"$(GO) test -run '^$$' -fuzz '^FuzzX$$' -fuzztime $(FUZZTIME) ./x/", result{"^FuzzX$", true}},
		{`go test -fuzz "FuzzY" ./y/`, result{"FuzzY", true}},
		{"go test ./x/ -fuzz", result{}},
		{"go test ./x/", result{}},
		{"", result{}},
		{"   ", result{}},
	} {
		v, ok := flagArg(tc.cmd, "fuzz")
		if diff := cmp.Diff(tc.want, result{v, ok}); diff != "" {
			t.Errorf("flagArg(%q) (-want +got):\n%s", tc.cmd, diff)
		}
	}
}

// TestFuzzRunsEveryTarget: each command of make fuzz fuzzes exactly one
// target of an existing package for a bounded time, and every fuzz target
// of the module has such a command.
func TestFuzzRunsEveryTarget(t *testing.T) {
	root := root(t)
	pkgs := packages(t, root)
	makefile := readMakefile(t, root)
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+)\s*\??:?=\s*(\S+)\s*$`).FindAllStringSubmatch(makefile, -1) {
		vars[m[1]] = m[2]
	}
	run := map[string]bool{}
	for _, cmd := range recipe(t, makefile, "fuzz") {
		expr, ok := flagArg(cmd, "fuzz")
		dirs := pkgArgs(cmd)
		if !ok || len(dirs) != 1 {
			t.Errorf("make fuzz: %q: want one -fuzz and one package", cmd)
			continue
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Errorf("make fuzz: %q: -fuzz %q: %v", cmd, expr, err)
			continue
		}
		p := pkgs[dirs[0]]
		if p == nil {
			t.Errorf("make fuzz: %q: no package %s", cmd, dirs[0])
			continue
		}
		var matched []string
		for _, name := range p.fuzz {
			if re.MatchString(name) {
				matched = append(matched, name)
			}
		}
		if len(matched) != 1 {
			// go test -fuzz refuses to fuzz more than one target at once.
			t.Errorf("make fuzz: %q matches %q in %s, want exactly one target", cmd, matched, dirs[0])
			continue
		}
		run[dirs[0]+"."+matched[0]] = true
		ft, _ := flagArg(cmd, "fuzztime")
		if v, ok := strings.CutPrefix(ft, "$("); ok {
			ft = vars[strings.TrimSuffix(v, ")")]
		}
		if d, err := time.ParseDuration(ft); err != nil || d <= 0 || d > maxFuzzTime {
			t.Errorf("make fuzz: %q: -fuzztime %q, want a duration up to %s", cmd, ft, maxFuzzTime)
		}
	}
	for dir, p := range pkgs {
		for _, name := range p.fuzz {
			if !run[dir+"."+name] {
				t.Errorf("make fuzz does not run %s in ./%s/: add to the Makefile's fuzz target\n\t$(GO) test -run '^$$' -fuzz '^%s$$' -fuzztime $(FUZZTIME) ./%s/", name, dir, name, dir)
			}
		}
	}
	if len(run) == 0 {
		t.Error("make fuzz runs no target")
	}
}

// TestRaceCoversGoroutines: make test-race runs every package with tests
// that starts goroutines, and names no package that does not exist.
func TestRaceCoversGoroutines(t *testing.T) {
	root := root(t)
	pkgs := packages(t, root)
	listed := map[string]bool{}
	for _, cmd := range recipe(t, readMakefile(t, root), "test-race") {
		if !strings.Contains(cmd, "-race") {
			continue
		}
		for _, dir := range pkgArgs(cmd) {
			if pkgs[dir] == nil {
				t.Errorf("make test-race names ./%s/, which holds no Go package", dir)
			}
			listed[dir] = true
		}
	}
	var missing []string
	for dir, p := range pkgs {
		if p.goroutines && p.tests && !listed[dir] && raceExempt[dir] == "" {
			missing = append(missing, "./"+dir+"/")
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("make test-race leaves out packages that start goroutines: %s (add them, or to raceExempt with a reason)", strings.Join(missing, " "))
	}
	for dir := range raceExempt {
		if listed[dir] {
			t.Errorf("./%s/ is both run under the race detector and exempt from it", dir)
		}
	}
}
