package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// migMinorsHead is the start of a real mig-minors file.
const migMinorsHead = `config 1
monitor 2
gpu0/gi0/access 3
gpu0/gi0/ci0/access 4
gpu0/gi0/ci1/access 5
gpu0/gi0/ci2/access 6
gpu0/gi0/ci3/access 7
gpu0/gi0/ci4/access 8
gpu0/gi0/ci5/access 9
gpu0/gi0/ci6/access 10
gpu0/gi0/ci7/access 11
gpu0/gi1/access 12
gpu0/gi1/ci0/access 13
`

func writeMIGMinors(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mig-minors")
	if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadMIGMinors(t *testing.T) {
	got, err := ReadMIGMinors(writeMIGMinors(t, migMinorsHead))
	if err != nil {
		t.Fatal(err)
	}
	want := MIGMinors{CapConfig: 1, CapMonitor: 2, GIAccess(0, 0): 3, GIAccess(0, 1): 12, CIAccess(0, 1, 0): 13}
	for ci := range 8 {
		want[CIAccess(0, 0, ci)] = 4 + ci
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadMIGMinors (-want +got):\n%s", diff)
	}
	if GIAccess(0, 1) != "gpu0/gi1/access" || CIAccess(0, 1, 0) != "gpu0/gi1/ci0/access" {
		t.Errorf("capability names %s, %s", GIAccess(0, 1), CIAccess(0, 1, 0))
	}

	t.Run("no file: no MIG", func(t *testing.T) {
		caps, err := ReadMIGMinors(filepath.Join(t.TempDir(), "mig-minors"))
		if err != nil || caps != nil {
			t.Errorf("missing file = %v, %v; want nil, nil", caps, err)
		}
	})

	t.Run("simulated file is the driver's", func(t *testing.T) {
		caps, err := parseMIGMinors(SimulatedMIGMinors(8))
		if err != nil {
			t.Fatal(err)
		}
		// What the driver numbers, and the head of a real file.
		if len(caps) != 2+8*15*9 || caps[GIAccess(1, 0)] != 138 || caps[CIAccess(7, 14, 7)] != 2+8*15*9 {
			t.Errorf("simulated minors: %d caps, gpu1/gi0 %d, last %d", len(caps), caps[GIAccess(1, 0)], caps[CIAccess(7, 14, 7)])
		}
		for k, v := range want {
			if caps[k] != v {
				t.Errorf("simulated %s = %d, the driver's %d", k, caps[k], v)
			}
		}
	})
}

func TestReadMIGMinorsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, content, line string
	}{
		{"no minor", "config 1\nmonitor\n", "monitor"},
		{"three fields", "config 1 2\n", "config 1 2"},
		{"unknown capability", "config 1\nsettings 2\n", "settings 2"},
		{"no access suffix", "gpu0/gi1 12\n", "gpu0/gi1 12"},
		{"too deep", "gpu0/gi1/ci0/x/access 12\n", "gpu0/gi1/ci0/x/access 12"},
		{"not a number in the path", "gpuX/gi1/access 12\n", "gpuX/gi1/access 12"},
		{"negative id", "gpu0/gi-1/access 12\n", "gpu0/gi-1/access 12"},
		{"minor not a number", "config one\n", "config one"},
		{"negative minor", "config -1\n", "config -1"},
		{"minor too large", "config 1048576\n", "config 1048576"},
		{"listed twice", "config 1\nconfig 3\n", "config 3"},
		{"minor shared", "config 1\ngpu0/gi0/access 1\n", "gpu0/gi0/access 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeMIGMinors(t, tc.content)
			_, err := ReadMIGMinors(p)
			wantLineError(t, err, p, tc.line)
		})
	}
}

// FuzzReadMIGMinors checks that any mig-minors file either parses into
// capabilities of the driver's form, each with its own minor a device
// number can hold, or is refused as invalid; never a panic.
func FuzzReadMIGMinors(f *testing.F) {
	for _, s := range []string{migMinorsHead, "", "config 1\n", "gpu0/gi1/ci0/access 13\nconfig 13\n", "gpu01/gi1/access 2\n", "\n\nmonitor 2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		caps, err := parseMIGMinors(data)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error %v does not wrap api.ErrInvalid", err)
			}
			return
		}
		seen := map[int]string{}
		for c, minor := range caps {
			if !validCap(c) || strings.ContainsAny(c, " \t\n") {
				t.Fatalf("capability %q accepted", c)
			}
			if minor < 0 || minor > maxCapMinor {
				t.Fatalf("%s: minor %d out of range", c, minor)
			}
			if other, ok := seen[minor]; ok {
				t.Fatalf("minor %d is both %s's and %s's", minor, other, c)
			}
			seen[minor] = c
		}
	})
}
