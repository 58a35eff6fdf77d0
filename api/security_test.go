package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSeccompNormalize(t *testing.T) {
	const profile = `{"defaultAction":"SCMP_ACT_ALLOW"}`
	// sha256 of profile, as sha256sum prints it.
	const digest = "sha256:1e91071efd3cec07b4e3e6cb9e0405055162ec9674f62869fe7f1564d5dce24f"
	custom := CustomSeccomp("p.json", []byte(profile))
	for _, tc := range []struct {
		name string
		in   Seccomp
		want Seccomp
	}{
		{"zero is default", Seccomp{}, Seccomp{Profile: SeccompDefault}},
		{"default", Seccomp{Profile: SeccompDefault}, Seccomp{Profile: SeccompDefault}},
		{"unconfined", Seccomp{Profile: SeccompUnconfined}, Seccomp{Profile: SeccompUnconfined}},
		{"custom keeps its digest", custom, custom},
		{"custom gets its digest", Seccomp{Profile: SeccompCustom, Custom: profile}, Seccomp{Profile: SeccompCustom, Custom: profile, Digest: custom.Digest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Normalize()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if custom.Digest != digest {
		t.Errorf("digest %q, want %q", custom.Digest, digest)
	}
}

func TestSeccompNormalizeErrors(t *testing.T) {
	for name, s := range map[string]Seccomp{
		"unknown profile":        {Profile: "strict"},
		"default with a profile": {Profile: SeccompDefault, Custom: "{}"},
		"unconfined with digest": {Profile: SeccompUnconfined, Digest: "sha256:00"},
		"empty with a source":    {Source: "p.json"},
		"custom without profile": {Profile: SeccompCustom},
		"custom, wrong digest":   {Profile: SeccompCustom, Custom: "{}", Digest: "sha256:00"},
		"custom, too large":      {Profile: SeccompCustom, Custom: strings.Repeat(" ", MaxSeccompProfileBytes+1)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Normalize(); !errors.Is(err, ErrInvalid) {
				t.Errorf("%v, want ErrInvalid", err)
			}
		})
	}
}
