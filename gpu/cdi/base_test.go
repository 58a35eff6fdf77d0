package cdi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/internal/userfile"
)

// secret stands for what a file that is not a spec holds: an error may say
// where the file went wrong, never repeat it.
const secret = "s3cr3t-hash"

// TestLoadBaseNotASpec gives LoadBase files that are not CDI specs, as a
// mistyped --gpu-cdi-spec does: each is refused with one line that repeats
// nothing of the file beyond a short escaped excerpt.
func TestLoadBaseNotASpec(t *testing.T) {
	long := strings.Repeat("k", 5000)
	for _, tc := range []struct {
		name, content string
		// spec is a file that parses as a CDI spec: its errors may quote
		// a value of it, escaped and cut short.
		spec bool
	}{
		{name: "passwd", content: "root:x:0:0:" + secret + ":/root:/bin/bash\ndaemon:x:1:1:" + secret + ":/usr/sbin:/usr/sbin/nologin\n"},
		{name: "shadow", content: "root:$6$" + secret + ":19000:0:99999:7:::\n"},
		{name: "several type errors", content: "cdiVersion: [" + secret + "]\nkind: {a: " + secret + "}\ndevices: " + secret + "\n"},
		{name: "unknown fields", content: testBaseYAML + secret + ": 1\n" + "x\x1b[2J" + secret + ": 2\n"},
		{name: "repeated field", content: testBaseYAML + "kind: " + secret + "\n"},
		{name: "binary", content: "\x00\x01\x02\x7f" + secret + "\xff\xfe"},
		{name: "long kind", content: strings.Replace(testBaseYAML, "kind: nvidia.com/gpu", "kind: "+long, 1), spec: true},
		{name: "kind with a newline", content: strings.Replace(testBaseYAML, "kind: nvidia.com/gpu", `kind: "a\nb\x1b[2J"`, 1), spec: true},
		{name: "long device name", content: strings.Replace(testBaseYAML, `name: "0"`, `name: "`+long+`\n"`, 1), spec: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBase(context.Background(), writeFile(t, "spec.yaml", tc.content))
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("LoadBase = %v, want an error wrapping api.ErrInvalid", err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r\x1b\x00") {
				t.Errorf("the error is not one printable line: %q", msg)
			}
			if !tc.spec && strings.Contains(msg, secret) || len(msg) > 2*maxExcerpt+200 {
				t.Errorf("the error repeats the file: %q", msg)
			}
			if n := strings.Count(msg, api.ErrInvalid.Error()); n != 1 {
				t.Errorf("the error says %q %d times: %q", api.ErrInvalid, n, msg)
			}
			t.Log(msg)
		})
	}
}

// TestLoadBaseInputs gives LoadBase inputs that are not files of a
// bounded size.
func TestLoadBaseInputs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  func(t *testing.T, dir string) string
		limit bool
	}{
		{"/dev/zero", func(*testing.T, string) string { return "/dev/zero" }, true},
		{"endless FIFO", func(t *testing.T, dir string) string { return testutil.FIFO(t, dir, "a", true) }, true},
		{"large file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "big.yaml")
			if err := os.WriteFile(p, []byte(testBaseYAML), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, MaxBaseBytes+1); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"directory", func(_ *testing.T, dir string) string { return dir }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBase(context.Background(), tc.path(t, t.TempDir()))
			var le *userfile.LimitError
			if !errors.Is(err, api.ErrInvalid) || errors.As(err, &le) != tc.limit {
				t.Errorf("LoadBase = %v, want api.ErrInvalid (a limit: %v)", err, tc.limit)
			}
		})
	}
	if _, err := LoadBase(context.Background(), testutil.FIFO(t, t.TempDir(), testBaseYAML, false)); err != nil {
		t.Errorf("a spec through a FIFO: %v", err)
	}
}

// FuzzParseBase: whatever a file holds, LoadBase's parse takes it as a
// spec or refuses it with one printable line that wraps api.ErrInvalid
// and says so once.
func FuzzParseBase(f *testing.F) {
	for _, s := range []string{testBaseYAML, "root:x:0:0:root:/root:/bin/bash\n", "{}", "cdiVersion: [x]\nkind: {a: b}\n", "\x00\xff", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := parseBase("spec.yaml", data)
		if err == nil {
			if spec == nil || spec.Kind != Kind {
				t.Fatalf("accepted %+v", spec)
			}
			return
		}
		msg := err.Error()
		switch {
		case !errors.Is(err, api.ErrInvalid):
			t.Fatalf("%q does not wrap api.ErrInvalid", msg)
		case strings.Count(msg, api.ErrInvalid.Error()) != 1:
			t.Fatalf("%q names %q more than once", msg, api.ErrInvalid)
		case strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
			t.Fatalf("%q is not one printable line", msg)
		case len(msg) > 2*maxExcerpt*utf8.UTFMax+200:
			t.Fatalf("%q is too long", msg)
		}
	})
}
