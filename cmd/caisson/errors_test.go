package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators/cgroups"
)

// TestWithFlagsNamesTheFlag: for every field of the spec that a flag
// sets, the CLI's message about a library's FieldError names the flag in
// place of the field, and the error still matches what it wraps.
func TestWithFlagsNamesTheFlag(t *testing.T) {
	field := func(name string) error {
		return &api.FieldError{Field: name, Err: fmt.Errorf("refused by test: %w", api.ErrInvalid)}
	}
	_, gpuErr := api.ParseGPURequest("0.5")
	tests := []struct {
		flag string
		err  error // as a library returns it
	}{
		{"--name", field("name")},
		{"--rootfs", field("rootfs")},
		{"--workdir", field("working_dir")},
		{"--env", field("env")},
		{"--network", field("networks")},
		{"--publish", field("ports")},
		{"--ingress-rate/--egress-rate", field("bandwidth")},
		{"--mount/-v", field("volumes")},
		{"--gpus", gpuErr},
		{"--security-opt", field("seccomp")},
		{"--cpus", cgroups.Validate(api.Resources{CPUs: 99}, 4)},
		{"--memory", cgroups.Validate(api.Resources{MemoryBytes: 1}, 4)},
		{"--memory-reservation", cgroups.Validate(api.Resources{MemoryReservationBytes: -1}, 4)},
		{"--pids-limit", cgroups.Validate(api.Resources{PidsLimit: -1}, 4)},
		{"--shm-size", field("shm_size_bytes")},
	}
	var covered []string
	for _, tc := range tests {
		var fe *api.FieldError
		if !errors.As(tc.err, &fe) {
			t.Fatalf("%s: %v is not an api.FieldError", tc.flag, tc.err)
		}
		covered = append(covered, fe.Field)
		t.Run(fe.Field, func(t *testing.T) {
			// As the containerizer returns it: wrapped in the isolator's name.
			err := withFlags(fmt.Errorf("launch: isolator: %w", tc.err))
			if want := "launch: isolator: " + fe.Relabel(tc.flag); err.Error() != want {
				t.Errorf("message %q, want %q", err, want)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("%v no longer wraps api.ErrInvalid", err)
			}
			var got *api.FieldError
			if !errors.As(err, &got) || got != fe {
				t.Errorf("%v no longer holds its FieldError", err)
			}
		})
	}
	slices.Sort(covered)
	var mapped []string
	for f := range fieldFlags {
		mapped = append(mapped, f)
	}
	slices.Sort(mapped)
	if diff := cmp.Diff(mapped, covered); diff != "" {
		t.Errorf("fields mapped to flags and fields tested differ (-mapped +tested):\n%s", diff)
	}
}

// TestWithFlagsLeavesTheRest: an error that names no field, or a field no
// flag sets, is shown as the library wrote it; each field of a joined
// error gets its flag.
func TestWithFlagsLeavesTheRest(t *testing.T) {
	plain := fmt.Errorf("no runtime: %w", api.ErrUnavailable)
	if got := withFlags(plain); got != plain {
		t.Errorf("withFlags(%v) = %v, want it unchanged", plain, got)
	}
	unmapped := fmt.Errorf("x: %w", &api.FieldError{Field: "labels", Err: api.ErrInvalid})
	if got := withFlags(unmapped); got != unmapped {
		t.Errorf("withFlags(%v) = %v, want it unchanged", unmapped, got)
	}
	joined := errors.Join(
		fmt.Errorf("cgroups: %w", &api.FieldError{Field: "resources.cpus", Value: "99", Err: api.ErrInvalid}),
		fmt.Errorf("gpu: %w", &api.FieldError{Field: "gpus", Value: "9", Err: api.ErrInvalid}),
	)
	want := "cgroups: --cpus 99: invalid argument\ngpu: --gpus 9: invalid argument"
	if diff := cmp.Diff(want, withFlags(joined).Error()); diff != "" {
		t.Errorf("joined (-want +got):\n%s", diff)
	}
}

// TestWithFlagsAlikeErrors: field errors with the same text, joined or
// wrapped one in another's message, are each relabelled once, where each
// is; the text around them is kept.
func TestWithFlagsAlikeErrors(t *testing.T) {
	gpus := func() error { return &api.FieldError{Field: "gpus", Value: "9", Err: api.ErrInvalid} }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"joined twice", errors.Join(fmt.Errorf("gpu: %w", gpus()), fmt.Errorf("gpu: %w", gpus())),
			"gpu: --gpus 9: invalid argument\ngpu: --gpus 9: invalid argument"},
		{"twice in one line", fmt.Errorf("a: %w; b: %w", gpus(), gpus()),
			"a: --gpus 9: invalid argument; b: --gpus 9: invalid argument"},
		{"three, between others", errors.Join(gpus(),
			fmt.Errorf("cgroups: %w", &api.FieldError{Field: "resources.cpus", Value: "gpus 9", Err: api.ErrInvalid}), gpus()),
			"--gpus 9: invalid argument\ncgroups: --cpus gpus 9: invalid argument\n--gpus 9: invalid argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, withFlags(tc.err).Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestFieldFlagsNameSpecFields: each field the CLI maps is a field of
// api.ContainerSpec by its JSON path, so that renaming one breaks here
// rather than silently losing its flag.
func TestFieldFlagsNameSpecFields(t *testing.T) {
	for f := range fieldFlags {
		typ := reflect.TypeFor[api.ContainerSpec]()
		for _, part := range strings.Split(f, ".") {
			sf, ok := jsonField(typ, part)
			if !ok {
				t.Errorf("%s: %s has no JSON field %q", f, typ, part)
				break
			}
			typ = sf.Type
			for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
				typ = typ.Elem()
			}
		}
	}
}

func jsonField(typ reflect.Type, name string) (reflect.StructField, bool) {
	if typ.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range typ.NumField() {
		if tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); tag == name {
			return typ.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// flagInText finds a command-line flag inside a string: a dash or two and
// a letter at the start or after a space or punctuation.
var flagInText = regexp.MustCompile("(^|[\\s\"'`(\\[,;:=])--?[a-zA-Z]")

// argvToken is a string that is one flag and nothing else ("--bundle",
// "--net="): an argument handed to another program, not a message.
var argvToken = regexp.MustCompile(`^--?[a-zA-Z][a-zA-Z0-9.-]*=?$`)

// flagsAllowed are the strings outside the CLI that may name a flag, and
// why; each is the literal as the source writes it.
var flagsAllowed = map[string]string{
	`"%s --version: empty output"`: "names the OCI runtime's own flag, in a message about what it printed",
	`"%s -t %s %s %s: %v: %s"`:     "the iptables command line that failed",
	`"-A "`:                        "the prefix of a rule in iptables -S output, parsed",
}

// TestLibrariesNameNoFlags: outside cmd/ (and the end-to-end tests, which
// drive the CLI, the packages that only tests import, such as managertest
// with its fake helper script, and other commands), no string names a
// command-line flag: libraries speak of
// what they do, and only the CLI knows its flags. A string that is a flag
// and nothing else is an argument for another program (runc, ip,
// unshare), allowed unless it is handed to fmt, errors or a logger to
// build a message (see stringLiterals).
//
// The check reads string literals one by one, as written: it misses a
// flag built from parts ("--"+name, fmt.Sprintf("--%s", name)), a literal
// that reaches a message through a variable or a constant, and a flag
// alone handed to a logger that is not called as one (a method value, a
// wrapper of the package's own).
func TestLibrariesNameNoFlags(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "cmd" || rel == "e2e" || testHelpers(d.Name())) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		checked++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil // a command of its own, with its own flags (scripts/...)
		}
		for lit, inMessage := range stringLiterals(f) {
			v, err := strconv.Unquote(lit.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", fset.Position(lit.Pos()), err)
			}
			if !flagInText.MatchString(v) || argvToken.MatchString(v) && !inMessage {
				continue
			}
			if _, ok := flagsAllowed[lit.Value]; ok {
				continue
			}
			pos := fset.Position(lit.Pos())
			pos.Filename = filepath.ToSlash(rel)
			t.Errorf("%s: %s names a command-line flag; say it in the library's terms (an api.FieldError names a spec field, which the CLI maps to its flag)", pos, lit.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files under %s: is it the module's root?", checked, root)
	}
}

// TestStringLiteralsInMessages: the strings handed to fmt, errors, slog
// or a logger's method are messages; those handed to anything else are
// not.
func TestStringLiteralsInMessages(t *testing.T) {
	src := `package p

func f() {
	_ = fmt.Errorf("--a")
	_ = errors.New("--b")
	log.Warn("--c")
	c.log.Info("msg", "hint", "--d")
	logger.With("flag", "--e").Debug("x")
	slog.String("flag", "--f")
	l.ErrorContext(ctx, "--g")
	exec.Command("runc", "--h")
	args := []string{"--i"}
	strings.Contains(s, "--j")
}
`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for lit, inMessage := range stringLiterals(f) {
		v, _ := strconv.Unquote(lit.Value)
		if strings.HasPrefix(v, "--") {
			got[v] = inMessage
		}
	}
	want := map[string]bool{
		"--a": true, "--b": true, "--c": true, "--d": true, "--e": true, "--f": true, "--g": true,
		"--h": false, "--i": false, "--j": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("in a message (-want +got):\n%s", diff)
	}
}

// testHelpers reports whether a package directory holds code for tests
// only (isolatorstest, managertest, testutil).
func testHelpers(dir string) bool { return strings.HasSuffix(dir, "test") || dir == "testutil" }

// logMethods are the methods of a *slog.Logger whose arguments make a log
// record: a call of one of them, on any value, is taken for a logger's.
var logMethods = map[string]bool{
	"Debug": true, "Info": true, "Warn": true, "Error": true,
	"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
	"Log": true, "LogAttrs": true, "With": true,
}

// buildsMessage reports whether a call's string arguments make a message:
// a call of package fmt, errors or slog, or of a logger's method
// (logMethods), whatever its receiver is named (log, logger, l.log).
func buildsMessage(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "fmt" || pkg.Name == "errors" || pkg.Name == "slog") {
		return true
	}
	return logMethods[sel.Sel.Name]
}

// stringLiterals are f's string literals, each with whether it is an
// argument of a call that builds a message (buildsMessage).
func stringLiterals(f *ast.File) map[*ast.BasicLit]bool {
	out := map[*ast.BasicLit]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if buildsMessage(n) {
				for _, a := range n.Args {
					if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[lit] = true
					}
				}
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if _, seen := out[n]; !seen {
					out[n] = false
				}
			}
		}
		return true
	})
	return out
}
