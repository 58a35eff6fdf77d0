package scenario

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

const treeHead = "version: 1\nagents: [{name: a, cpus: 1, memory: 1Gi}]\nconsumers:\n"

// treeHeadLines is how many lines treeHead has.
var treeHeadLines = strings.Count(treeHead, "\n")

// nestedTree is a chain of n consumers written nested (children:), each
// entry on two lines (name, children) but the last on one.
func nestedTree(n int) string { return treeHead + nested("", "c", n) }

// nested writes a chain of n consumers named prefix0, prefix1, ... nested
// in each other, indented by indent.
func nested(indent, prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		ind := indent + strings.Repeat("    ", i)
		fmt.Fprintf(&b, "%s  - name: %s%d\n", ind, prefix, i)
		if i < n-1 {
			fmt.Fprintf(&b, "%s    children:\n", ind)
		}
	}
	return b.String()
}

// flatTree is a chain of n consumers written flat (parent:), the top
// first or, with reverse, last; each entry but the top's on two lines.
func flatTree(n int, reverse bool) string {
	entries := make([]string, n)
	entries[0] = "  - name: c0\n"
	for i := 1; i < n; i++ {
		entries[i] = fmt.Sprintf("  - name: c%d\n    parent: c%d\n", i, i-1)
	}
	if reverse {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			entries[i], entries[j] = entries[j], entries[i]
		}
	}
	return treeHead + strings.Join(entries, "")
}

// mixedTree is a flat chain of n consumers, with a nested chain of m
// under its last.
func mixedTree(n, m int) string {
	return flatTree(n, false) + "    children:\n" + nested("    ", "n", m)
}

// TestDepthLimit checks that the consumer tree's depth limit applies to
// every way of writing it: a chain of maxDepth consumers is taken, one
// more is refused with an *Error at the first consumer too deep, its file
// and line.
func TestDepthLimit(t *testing.T) {
	type loc struct {
		Line  int
		Field string
	}
	nestedPath := func(n int) string { return "consumers[0]" + strings.Repeat(".children[0]", n) }
	flatLine := func(i int) int { return treeHeadLines + 1 + 1 + 2*(i-1) + 1 } // c_i's parent line
	for _, tc := range []struct {
		name string
		file string
		want *loc // nil: accepted
	}{
		{"nested at the limit", nestedTree(maxDepth), nil},
		{"nested above the limit", nestedTree(maxDepth + 1), &loc{treeHeadLines + 1 + 2*maxDepth, nestedPath(maxDepth)}},
		{"flat at the limit", flatTree(maxDepth, false), nil},
		{"flat above the limit", flatTree(maxDepth+1, false), &loc{flatLine(maxDepth), fmt.Sprintf("consumers[%d].parent", maxDepth)}},
		{"flat, reversed, at the limit", flatTree(maxDepth, true), nil},
		{"flat, reversed, above the limit", flatTree(maxDepth+1, true), &loc{treeHeadLines + 2, "consumers[0].parent"}},
		{"mixed at the limit", mixedTree(maxDepth/2, maxDepth/2), nil},
		{"mixed above the limit", mixedTree(maxDepth/2, maxDepth/2+1),
			&loc{treeHeadLines + 2*maxDepth/2 + 2*(maxDepth/2) + 1, fmt.Sprintf("consumers[%d].children[0]", maxDepth/2-1) + strings.Repeat(".children[0]", maxDepth/2)}},
		{"large flat chain", flatTree(20_000, false), &loc{flatLine(maxDepth), fmt.Sprintf("consumers[%d].parent", maxDepth)}},
		{"large flat chain, reversed", flatTree(20_000, true), &loc{0, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("tree.yaml", []byte(tc.file))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				replay(t, s)
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, api.ErrInvalid) || e.File != "tree.yaml" || e.Line == 0 {
				t.Fatalf("got %v, want an *Error with a line wrapping api.ErrInvalid", err)
			}
			t.Log(err)
			if tc.want.Line == 0 {
				return // where depends on the order; that it is refused is the point
			}
			if diff := cmp.Diff(*tc.want, loc{e.Line, e.Field}); diff != "" {
				t.Errorf("%v (-want +got):\n%s", err, diff)
			}
		})
	}
}

// TestDepthLimitBuilt checks the limit on a Scenario built in code.
func TestDepthLimitBuilt(t *testing.T) {
	for _, n := range []int{maxDepth, maxDepth + 1, 10_000} {
		s := &Scenario{Name: "code", Version: Version, Tick: DefaultTick,
			Agents: []scheduler.AgentSpec{{ID: "a", Resources: scheduler.Res(1000, 1<<30)}}}
		for i := range n {
			c := scheduler.ConsumerSpec{Name: fmt.Sprintf("c%d", i)}
			if i > 0 {
				c.Parent = fmt.Sprintf("c%d", i-1)
			}
			s.Consumers = append(s.Consumers, c)
		}
		err := s.Validate()
		var e *Error
		switch {
		case n <= maxDepth && err != nil:
			t.Errorf("%d levels: %v", n, err)
		case n > maxDepth && (!errors.As(err, &e) || e.Field != fmt.Sprintf("consumers[%d].parent", maxDepth) || e.Line != 0):
			t.Errorf("%d levels: %v, want an *Error at consumers[%d].parent", n, err, maxDepth)
		}
	}
}

// BenchmarkFlatChain parses a flat chain of consumers far deeper than the
// limit, which is refused: the time must grow with the chain's length,
// not its square (a 40,000-level chain took 35 s when only nesting was
// limited).
func BenchmarkFlatChain(b *testing.B) {
	for _, n := range []int{10_000, 40_000} {
		file := []byte(flatTree(n, true))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Parse("chain.yaml", file); err == nil {
					b.Fatal("a chain deeper than the limit was taken")
				}
			}
		})
	}
}
