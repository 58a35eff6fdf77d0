package api

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGPURequest(t *testing.T) {
	good := []struct {
		in   string
		want *GPURequest
	}{
		{"", nil},
		{"0", nil},
		{"2", &GPURequest{Count: 2}},
		{" 8 ", &GPURequest{Count: 8}},
		{"all", &GPURequest{All: true}},
		{"GPU-1a2b", &GPURequest{UUIDs: []string{"GPU-1a2b"}}},
		{"GPU-1a2b,GPU-3c4d", &GPURequest{UUIDs: []string{"GPU-1a2b", "GPU-3c4d"}}},
	}
	for _, c := range good {
		got, err := ParseGPURequest(c.in)
		if err != nil {
			t.Errorf("ParseGPURequest(%q): %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("ParseGPURequest(%q) (-want +got):\n%s", c.in, diff)
		}
		if got != nil {
			if back, err := ParseGPURequest(got.String()); err != nil || !cmp.Equal(back, got) {
				t.Errorf("%q does not parse back: %v, %v", got.String(), back, err)
			}
		}
	}
	for _, in := range []string{"0.5", "1.0", "1e3", "-1", "two", "All", "GPU-", "GPU-a,GPU-a", "GPU-a,3", "GPU-a b", "9999999999999999999999"} {
		if r, err := ParseGPURequest(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseGPURequest(%q) = %v, %v; want ErrInvalid", in, r, err)
		}
	}
}

func FuzzParseGPURequest(f *testing.F) {
	for _, s := range []string{"2", "all", "GPU-a,GPU-b", "0.5", "-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseGPURequest(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if r == nil {
			return
		}
		set := 0
		if r.Count > 0 {
			set++
		}
		if r.All {
			set++
		}
		if len(r.UUIDs) > 0 {
			set++
		}
		if set != 1 || r.Count < 0 {
			t.Fatalf("%q: %+v sets %d fields", s, r, set)
		}
		back, err := ParseGPURequest(r.String())
		if err != nil || !cmp.Equal(back, r) {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", s, r, back, err)
		}
	})
}
