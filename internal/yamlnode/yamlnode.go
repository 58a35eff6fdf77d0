package yamlnode

import (
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Describe names a node's value for an error: a scalar quoted ("abc",
// "12"), or what kind of thing stands where a value should be: a
// mapping, a list, nothing.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

var lineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// SyntaxError is where the decoder's error says the syntax is wrong: its
// line (0 when it names none) and its message, without the "yaml: line
// N: " before it.
func SyntaxError(err error) (line int, msg string) {
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, strings.TrimPrefix(err.Error(), "yaml: ")
}

// LineOf is the line of the field at path ("groups[0].resources.memory")
// in lines, which maps the paths a walk went through to their lines; or
// the line of its nearest parent there; 0 when none is.
func LineOf(lines map[string]int, path string) int {
	for p := path; p != ""; {
		if l, ok := lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}
