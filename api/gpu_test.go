package api

import (
	"errors"
	"strings"
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
		// MIG devices, by UUID (mixed with GPUs) or by profile.
		{"MIG-5e6f,GPU-1a2b", &GPURequest{UUIDs: []string{"MIG-5e6f", "GPU-1a2b"}}},
		{"mig-1g.5gb", &GPURequest{MIGProfile: "1g.5gb", Count: 1}},
		{"mig-1g.5gb:2", &GPURequest{MIGProfile: "1g.5gb", Count: 2}},
		{"mig-1c.3g.20gb:3", &GPURequest{MIGProfile: "1c.3g.20gb", Count: 3}},
		{"mig-1g.5gb+me", &GPURequest{MIGProfile: "1g.5gb+me", Count: 1}},
		{"mig-1g.10gb-me:1", &GPURequest{MIGProfile: "1g.10gb-me", Count: 1}},
		{"mig-1g.12gb+me.all", &GPURequest{MIGProfile: "1g.12gb+me.all", Count: 1}},
		{" mig-7g.80gb ", &GPURequest{MIGProfile: "7g.80gb", Count: 1}},
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
	for _, in := range []string{"0.5", "1.0", "1e3", "-1", "two", "All", "GPU-", "GPU-a,GPU-a", "GPU-a,3", "GPU-a b", "9999999999999999999999",
		// Malformed MIG requests: no profile, a bad count, a profile that is
		// not NVIDIA's form, and MIG UUIDs in the old form with slashes.
		"mig-", "mig-:2", "mig-1g.5gb:0", "mig-1g.5gb:-1", "mig-1g.5gb:+1", "mig-1g.5gb:01", "mig-1g.5gb:x", "mig-1g.5gb:",
		"mig-1g.5gb:1:2", "mig-1g", "mig-1g.5", "mig-g.5gb", "mig-0g.5gb", "mig-01g.5gb", "mig-1g.5gb.1c", "mig-3c.3g.20gb",
		"mig-4c.3g.20gb", "mig-1g.5gb+", "mig-1g.5gb+me,me", "mig-1g.5gb+Me", "mig-1g.5gb+me-gfx", "mig-1G.5GB", "MIG-",
		"MIG-GPU-1a2b/1/0", "mig-1g.5gb,mig-2g.10gb", "GPU-a,mig-1g.5gb"} {
		r, err := ParseGPURequest(in)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseGPURequest(%q) = %v, %v; want ErrInvalid", in, r, err)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "gpus" {
			t.Errorf("ParseGPURequest(%q) = %v; want a FieldError about gpus", in, err)
		}
		saysInvalidOnce(t, err)
	}
}

func FuzzParseGPURequest(f *testing.F) {
	for _, s := range []string{"2", "all", "GPU-a,GPU-b", "0.5", "-3", "MIG-a,GPU-b", "mig-1g.5gb", "mig-1c.3g.20gb:2", "mig-1g.5gb+me"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseGPURequest(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
			saysInvalidOnce(t, err)
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
		if r.MIGProfile != "" && (r.Count < 1 || CheckMIGProfile(r.MIGProfile) != nil) {
			t.Fatalf("%q: %+v is a MIG request without a count or with a bad profile", s, r)
		}
		for _, u := range r.UUIDs {
			if !IsGPUUUID(u) && !IsMIGUUID(u) {
				t.Fatalf("%q: %q is neither a GPU nor a MIG UUID", s, u)
			}
		}
		back, err := ParseGPURequest(r.String())
		if err != nil || !cmp.Equal(back, r) {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", s, r, back, err)
		}
	})
}

func TestCheckMIGProfile(t *testing.T) {
	for _, p := range []string{"1g.5gb", "2g.10gb", "3g.20gb", "7g.80gb", "1c.3g.20gb", "2c.7g.80gb", "1g.5gb+me", "1g.10gb-me", "1g.24gb+me.all", "4g.48gb+gfx", "1c.2g.10gb+me"} {
		if err := CheckMIGProfile(p); err != nil {
			t.Errorf("CheckMIGProfile(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", "1g", "1g.5gb.", ".1g.5gb", "1x.5gb", "1g.5tb", "1c.1g.5gb", "2c.1g.5gb", "1c.1c.5gb", "1g.5gb+", "1g.5gb+.me", "1g.5gb+me.", "1g.5gb+1me", "1g.5gb+me+gfx", "1g.5gb-me,me"} {
		err := CheckMIGProfile(p)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckMIGProfile(%q) = %v, want ErrInvalid", p, err)
		}
		saysInvalidOnce(t, err)
	}
}

func TestParseMIGLayout(t *testing.T) {
	got, err := ParseMIGLayout("1g.5gb, 1g.5gb,2g.10gb,3g.20gb")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"}, got); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
	if got, err := ParseMIGLayout("off"); err != nil || got != nil {
		t.Errorf("off = %v, %v; want nil, nil", got, err)
	}
	for _, s := range []string{"", "1g.5gb,", "1g.5gb,,2g.10gb", "on", "1g"} {
		_, err := ParseMIGLayout(s)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMIGLayout(%q) = %v, want ErrInvalid", s, err)
		}
		saysInvalidOnce(t, err)
	}
}

// saysInvalidOnce checks that an error's message names ErrInvalid once: a
// reason made from another error's message, then wrapped, said it twice
// ("--gpus mig-").
func saysInvalidOnce(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Count(err.Error(), ErrInvalid.Error()) != 1 {
		t.Errorf("%q names %q more than once", err, ErrInvalid)
	}
}
