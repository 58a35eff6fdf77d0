package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
)

// FuzzParse feeds Parse arbitrary files. It must not panic; what it
// refuses it refuses with a located *Error and no Scenario; what it
// accepts validates again, with and without its positions, and the core
// takes its consumers, agents and sessions.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../examples/sim-*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base))
	f.Add([]byte(base + "        gpus: 0.5\n        duration: {dist: lognormal, median: 2s, sigma: 1}\n"))
	f.Add([]byte(strings.Replace(base, "consumers:\n", "consumers:\n  - name: x\n    parent: y\n  - name: y\n    parent: x\n", 1)))
	f.Add([]byte("version: 1\nagents: &a [{name: a, cpus: 1, memory: 1}]\nconsumers: [&c {name: c, children: [*c]}]\n"))
	f.Add([]byte("version: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var e *Error
			switch {
			case s != nil:
				t.Fatalf("a scenario came with the error %v", err)
			case !errors.As(err, &e) || e.File != "fuzz.yaml":
				t.Fatalf("error %v is not an *Error for fuzz.yaml", err)
			case !errors.Is(err, api.ErrInvalid):
				t.Fatalf("error %v does not wrap api.ErrInvalid", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("an accepted scenario does not validate again: %v", err)
		}
		bare := *s
		bare.src = nil
		if err := bare.Validate(); err != nil {
			t.Fatalf("an accepted scenario does not validate without its positions: %v", err)
		}
		tasks := 0
		for _, ss := range s.Sessions {
			for _, g := range ss.Spec.Groups {
				tasks += g.Count
			}
		}
		// Small scenarios only: the core places every task, and a fuzzer
		// that minimizes a large input runs it thousands of times.
		if len(s.Agents) <= 32 && len(s.Sessions) <= 32 && tasks <= 1000 {
			replay(t, s)
		}
	})
}
