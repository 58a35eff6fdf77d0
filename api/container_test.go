package api

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// An entrypoint cleared on purpose (empty, not nil) stays cleared through
// JSON, and one never given stays absent: the two mean different things.
func TestEntrypointRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry []string
	}{
		{"absent", nil},
		{"cleared", []string{}},
		{"set", []string{"/bin/sh", "-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(ContainerSpec{Entrypoint: tc.entry})
			if err != nil {
				t.Fatal(err)
			}
			var got ContainerSpec
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if (got.Entrypoint == nil) != (tc.entry == nil) {
				t.Fatalf("entrypoint %#v came back as %#v (%s)", tc.entry, got.Entrypoint, data)
			}
			if diff := cmp.Diff(tc.entry, got.Entrypoint); diff != "" {
				t.Errorf("entrypoint (-want +got):\n%s", diff)
			}
		})
	}
}
