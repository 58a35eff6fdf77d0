package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// procDevicesR535 is /proc/devices of a host with driver 535 (GPU major
// "nvidia-frontend"), MIG caps and a dynamic nvidia-uvm major.
const procDevicesR535 = `Character devices:
  1 mem
  4 /dev/vc/0
  4 tty
  5 /dev/tty
 10 misc
 13 input
 29 fb
136 pts
195 nvidia-frontend
234 nvidia-caps
237 nvidia-uvm
238 nvidia-nvswitch
239 nvidia-nvlink
254 gpiochip

Block devices:
  7 loop
  8 sd
259 blkext
`

// procDevicesR550 is a driver 550.54 host: the GPU major is "nvidia", and
// the block section lists a major that is also a char major elsewhere.
const procDevicesR550 = `Character devices:
  1 mem
  5 /dev/tty
195 nvidia
195 nvidia-modeset
510 nvidia-uvm

Block devices:
  7 loop
237 nvidia-uvm
`

// procDevicesNoDriver has no NVIDIA module; majors 240 and 241 are taken.
const procDevicesNoDriver = `Character devices:
  1 mem
  4 tty
240 hidraw
241 aux

Block devices:
  8 sd
`

func writeProcDevices(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "devices")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadMajors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          Majors
	}{
		{"nvidia-frontend before 550.40", procDevicesR535, Majors{GPU: 195, UVM: 237, Caps: 234}},
		{"nvidia since 550.40, dynamic uvm", procDevicesR550, Majors{GPU: 195, UVM: 510}},
		{"no driver", procDevicesNoDriver, Majors{}},
		{"empty", "", Majors{}},
		{"both names prefer nvidia", "Character devices:\n195 nvidia-frontend\n196 nvidia\n", Majors{GPU: 196}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadMajors(writeProcDevices(t, tc.content))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ReadMajors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadMajorsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, content, line string
	}{
		{"no name", "Character devices:\n  1 mem\n195\n", "195"},
		{"not a number", "Character devices:\nxx nvidia\n", "xx nvidia"},
		{"major too large", "Character devices:\n99999 nvidia\n", "99999 nvidia"},
		{"negative", "Character devices:\n-1 nvidia\n", "-1 nvidia"},
		{"before any section", "195 nvidia\n", "195 nvidia"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeProcDevices(t, tc.content)
			_, err := ReadMajors(p)
			wantLineError(t, err, p, tc.line)
		})
	}
}

// wantLineError checks that a read of file p was refused as invalid,
// naming the file and the offending line.
func wantLineError(t *testing.T, err error, p, line string) {
	t.Helper()
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("read %s = %v, want an error wrapping api.ErrInvalid", p, err)
	}
	if msg := err.Error(); !strings.Contains(msg, p) || !strings.Contains(msg, strconv.Quote(line)) {
		t.Errorf("error %q does not name %s and line %q", msg, p, line)
	}
}

func TestReadMajorsMissingFile(t *testing.T) {
	_, err := ReadMajors(filepath.Join(t.TempDir(), "devices"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadMajors = %v, want not exist", err)
	}
}

func TestSimulatedMajors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          Majors
	}{
		{"first free local majors", procDevicesNoDriver, Majors{GPU: 195, UVM: 242, Caps: 243}},
		// 240 is a block major only, so it is free for character devices.
		{"block majors do not count", "Character devices:\n1 mem\n\nBlock devices:\n240 sd\n", Majors{GPU: 195, UVM: 240, Caps: 241}},
		{"holes", "Character devices:\n240 a\n242 b\n243 c\n", Majors{GPU: 195, UVM: 241, Caps: 244}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SimulatedMajors(writeProcDevices(t, tc.content))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SimulatedMajors (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("one local major left", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Character devices:\n")
		for m := 240; m <= 253; m++ {
			b.WriteString(strconv.Itoa(m) + " local\n")
		}
		_, err := SimulatedMajors(writeProcDevices(t, b.String()))
		if !errors.Is(err, api.ErrUnavailable) {
			t.Fatalf("SimulatedMajors = %v, want an error wrapping api.ErrUnavailable", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, err := SimulatedMajors(writeProcDevices(t, "garbage\n"))
		if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("SimulatedMajors = %v, want an error wrapping api.ErrInvalid", err)
		}
	})
}

// FuzzReadMajors checks that any /proc/devices either parses into majors the
// kernel could have, or is refused as invalid; never a panic, and a simulated
// uvm or caps major is never one the file lists.
func FuzzReadMajors(f *testing.F) {
	for _, s := range []string{procDevicesR535, procDevicesR550, procDevicesNoDriver, "", "Character devices:\n195\n", "x:\n1 a b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		devs, err := parseCharDevices(data)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error %v does not wrap api.ErrInvalid", err)
			}
			return
		}
		m := majorsOf(devs)
		for _, v := range []int{m.GPU, m.UVM, m.Caps} {
			if v < 0 || v > maxMajor {
				t.Fatalf("major %d out of range in %+v", v, m)
			}
		}
		for _, d := range devs {
			if d.name == "" || strings.ContainsAny(d.name, "\n") {
				t.Fatalf("bad device name %q", d.name)
			}
		}
		sim, ok := simulatedMajors(devs)
		if !ok {
			return
		}
		if sim.GPU != NVIDIAMajor || sim.UVM < localMajorFirst || sim.UVM > localMajorLast ||
			sim.Caps < localMajorFirst || sim.Caps > localMajorLast || sim.Caps == sim.UVM {
			t.Fatalf("simulated majors %+v", sim)
		}
		for _, d := range devs {
			if d.major == sim.UVM || d.major == sim.Caps {
				t.Fatalf("simulated major %d is listed as %q", d.major, d.name)
			}
		}
	})
}
