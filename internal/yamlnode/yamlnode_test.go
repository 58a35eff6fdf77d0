package yamlnode

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"abc", `"abc"`},
		{"12", `"12"`},
		{"~", "nothing"},
		{"[1]", "a list"},
		{"{a: 1}", "a mapping"},
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tc.doc), &n); err != nil {
			t.Fatal(err)
		}
		if got := Describe(n.Content[0]); got != tc.want {
			t.Errorf("Describe(%s) = %s, want %s", tc.doc, got, tc.want)
		}
	}
}

func TestSyntaxError(t *testing.T) {
	type where struct {
		Line int
		Msg  string
	}
	for _, tc := range []struct {
		err  error
		want where
	}{
		{errors.New("yaml: line 7: did not find expected key"), where{7, "did not find expected key"}},
		{errors.New("yaml: unknown anchor 'a' referenced"), where{0, "unknown anchor 'a' referenced"}},
		{errors.New("unexpected EOF"), where{0, "unexpected EOF"}},
	} {
		line, msg := SyntaxError(tc.err)
		if diff := cmp.Diff(tc.want, where{line, msg}); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.err, diff)
		}
	}
	// The decoder's own errors say their line so.
	var n yaml.Node
	err := yaml.Unmarshal([]byte("a: 1\nb: [\n"), &n)
	if line, _ := SyntaxError(err); line != 2 {
		t.Errorf("%v: line %d, want 2", err, line)
	}
}

func TestLineOf(t *testing.T) {
	lines := map[string]int{"groups": 3, "groups[1]": 9, "groups[1].resources": 11}
	for path, want := range map[string]int{
		"groups[1].resources.memory": 11, // its parent's
		"groups[1].image":            9,
		"groups[0].name":             3,
		"groups":                     3,
		"name":                       0,
		"":                           0,
	} {
		if got := LineOf(lines, path); got != want {
			t.Errorf("LineOf(%q) = %d, want %d", path, got, want)
		}
	}
}
