package cdi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// scratchSpec is what the isolator injects into: deny-all first, an image
// env that asks for every GPU, and a mount of its own.
func scratchSpec() *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{Env: []string{"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=all"}},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{Resources: &specs.LinuxResources{
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		}},
	}
}

// writeTestSpec generates the test spec and writes it into a new directory.
func writeTestSpec(t *testing.T) (string, Files) {
	t.Helper()
	spec, files := generateTest(t, nil)
	dir := filepath.Join(t.TempDir(), "cdi")
	if err := Write(dir, spec); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func TestInject(t *testing.T) {
	dir, files := writeTestSpec(t)
	mode := os.FileMode(0o666)
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor, FileMode: &mode}
	}
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}
	}
	control := []specs.LinuxDevice{
		dev("/dev/nvidiactl", 195, 255), dev("/dev/nvidia-modeset", 195, 254),
		dev("/dev/nvidia-uvm", 242, 0), dev("/dev/nvidia-uvm-tools", 242, 1),
	}
	controlRules := []specs.LinuxDeviceCgroup{allow(195, 255), allow(195, 254), allow(242, 0), allow(242, 1)}
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}

	wantMounts := []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}}
	for _, group := range [][]string{files.Libraries, files.Links, files.Binaries, files.Firmware, files.Sockets} {
		for _, p := range group {
			wantMounts = append(wantMounts, specs.Mount{
				Source:      p,
				Destination: strings.TrimPrefix(p, files.Root),
				Type:        "bind",
				Options:     []string{"ro", "nosuid", "nodev", "rbind"},
			})
		}
	}

	for _, tc := range []struct {
		name      string
		uuids     []string
		wantDevs  []specs.LinuxDevice
		wantRules []specs.LinuxDeviceCgroup
	}{
		{
			name:      "one GPU",
			uuids:     []string{uuid1},
			wantDevs:  append(control, dev("/dev/nvidia1", 195, 1)),
			wantRules: append(append([]specs.LinuxDeviceCgroup{denyAll}, controlRules...), allow(195, 1)),
		},
		{
			name:      "two GPUs, one listed twice",
			uuids:     []string{uuid1, uuid0, uuid1},
			wantDevs:  append(control, dev("/dev/nvidia1", 195, 1), dev("/dev/nvidia0", 195, 0)),
			wantRules: append(append([]specs.LinuxDeviceCgroup{denyAll}, controlRules...), allow(195, 1), allow(195, 0)),
		},
		{
			// Its GPU's node and the access caps of its GPU and compute
			// instances; not the caps of GPU instance 2's other compute
			// instance, nor config or monitor.
			name:  "a MIG device",
			uuids: []string{mig1},
			wantDevs: append(control, dev("/dev/nvidia3", 195, 3),
				dev("/dev/nvidia-caps/nvidia-cap426", 243, 426), dev("/dev/nvidia-caps/nvidia-cap427", 243, 427)),
			wantRules: append(append([]specs.LinuxDeviceCgroup{denyAll}, controlRules...), allow(195, 3), allow(243, 426), allow(243, 427)),
		},
		{
			name:  "two MIG devices of one GPU instance and a GPU",
			uuids: []string{mig1, mig2, uuid0},
			wantDevs: append(control, dev("/dev/nvidia3", 195, 3),
				dev("/dev/nvidia-caps/nvidia-cap426", 243, 426), dev("/dev/nvidia-caps/nvidia-cap427", 243, 427),
				dev("/dev/nvidia-caps/nvidia-cap428", 243, 428), dev("/dev/nvidia0", 195, 0)),
			// The rules of each device, shared nodes twice.
			wantRules: append(append([]specs.LinuxDeviceCgroup{denyAll}, controlRules...), allow(195, 3), allow(243, 426), allow(243, 427),
				allow(195, 3), allow(243, 426), allow(243, 428), allow(195, 0)),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scratchSpec()
			if err := Inject(dir, s, tc.uuids); err != nil {
				t.Fatal(err)
			}
			// Exactly the granted GPUs' nodes and the control nodes; no
			// other GPU's node. (A node two MIG devices share is listed
			// once, where the CDI library last put it.)
			byPath := cmpopts.SortSlices(func(a, b specs.LinuxDevice) bool { return a.Path < b.Path })
			if diff := cmp.Diff(tc.wantDevs, s.Linux.Devices, byPath); diff != "" {
				t.Errorf("linux.devices (-want +got):\n%s", diff)
			}
			// Deny-all stays first; one allow rule per node.
			if diff := cmp.Diff(tc.wantRules, s.Linux.Resources.Devices); diff != "" {
				t.Errorf("device rules (-want +got):\n%s", diff)
			}
			// The image's NVIDIA_VISIBLE_DEVICES=all is overridden.
			if diff := cmp.Diff([]string{"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=void"}, s.Process.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantMounts, s.Mounts, cmpopts.SortSlices(func(a, b specs.Mount) bool { return a.Destination < b.Destination })); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
			if s.Hooks != nil {
				t.Errorf("hooks %+v, want none without a base spec", s.Hooks)
			}
		})
	}
}

func TestInjectNothing(t *testing.T) {
	dir, _ := writeTestSpec(t)
	for _, uuids := range [][]string{nil, {}} {
		s := scratchSpec()
		if err := Inject(dir, s, uuids); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(scratchSpec(), s); diff != "" {
			t.Errorf("Inject(%v) changed the spec (-want +got):\n%s", uuids, diff)
		}
	}
	// Nothing is read when nothing is asked, not even a missing dir.
	if err := Inject(filepath.Join(t.TempDir(), "none"), scratchSpec(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestInjectUnknown(t *testing.T) {
	dir, _ := writeTestSpec(t)
	// Another file of the dir that does not load is named, not fatal.
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("cdiVersion: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const unknown = "GPU-00000000-0000-0000-0000-000000000000"
	s := scratchSpec()
	err := Inject(dir, s, []string{uuid0, unknown})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Inject = %v, want an error wrapping api.ErrNotFound", err)
	}
	for _, want := range []string{unknown, broken} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), uuid0) {
		t.Errorf("error %q names the known GPU %s", err, uuid0)
	}
	if diff := cmp.Diff(scratchSpec(), s); diff != "" {
		t.Errorf("a failed Inject changed the spec (-want +got):\n%s", diff)
	}

	t.Run("a GPU in MIG mode is not a device", func(t *testing.T) {
		s := scratchSpec()
		if err := Inject(dir, s, []string{uuid2}); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), uuid2) {
			t.Errorf("Inject(MIG-mode GPU) = %v, want an error wrapping api.ErrNotFound naming it", err)
		}
	})

	t.Run("broken other file does not stop known GPUs", func(t *testing.T) {
		s := scratchSpec()
		if err := Inject(dir, s, []string{uuid0}); err != nil {
			t.Fatal(err)
		}
		if len(s.Linux.Devices) != 5 {
			t.Errorf("linux.devices %+v, want 5", s.Linux.Devices)
		}
	})
}

func TestInjectErrors(t *testing.T) {
	t.Run("no spec in dir", func(t *testing.T) {
		err := Inject(t.TempDir(), scratchSpec(), []string{uuid0})
		if !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("Inject = %v, want an error wrapping api.ErrNotFound", err)
		}
	})
	t.Run("not a device name", func(t *testing.T) {
		dir, _ := writeTestSpec(t)
		err := Inject(dir, scratchSpec(), []string{"nvidia.com/gpu=all"})
		if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("Inject = %v, want an error wrapping api.ErrInvalid", err)
		}
	})
	t.Run("corrupt spec", func(t *testing.T) {
		dir, _ := writeTestSpec(t)
		p := filepath.Join(dir, SpecFile)
		if err := os.WriteFile(p, []byte(`{"cdiVersion": "1.1.0", "kind": "nvidia.com/gpu", "devices": []}`), 0o644); err != nil {
			t.Fatal(err)
		}
		err := Inject(dir, scratchSpec(), []string{uuid0})
		if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("Inject = %v, want an error wrapping api.ErrInvalid", err)
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	})
	t.Run("another file defines the same device", func(t *testing.T) {
		dir, _ := writeTestSpec(t)
		b, err := os.ReadFile(filepath.Join(dir, SpecFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "copy.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		err = Inject(dir, scratchSpec(), []string{uuid0})
		if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("Inject = %v, want an error wrapping api.ErrInvalid", err)
		}
	})
	t.Run("nil spec", func(t *testing.T) {
		dir, _ := writeTestSpec(t)
		if err := Inject(dir, nil, []string{uuid0}); !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("Inject = %v, want an error wrapping api.ErrInvalid", err)
		}
	})
}

func TestInjectBase(t *testing.T) {
	base, err := LoadBase(context.Background(), writeFile(t, "nvidia.yaml", testBaseYAML))
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := generateTest(t, base)
	dir := filepath.Join(t.TempDir(), "cdi")
	if err := Write(dir, spec); err != nil {
		t.Fatal(err)
	}
	s := scratchSpec()
	if err := Inject(dir, s, []string{uuid0}); err != nil {
		t.Fatal(err)
	}
	var args [][]string
	for _, h := range s.Hooks.CreateContainer {
		args = append(args, h.Args[:2])
	}
	if diff := cmp.Diff([][]string{{"nvidia-cdi-hook", "create-symlinks"}, {"nvidia-cdi-hook", "update-ldcache"}}, args); diff != "" {
		t.Errorf("createContainer hooks (-want +got):\n%s", diff)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if diff := cmp.Diff([]string{"/proc", "/usr/bin/nvidia-smi", "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15"}, dests); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_CTK_LIBCUDA_DIR=/usr/lib/x86_64-linux-gnu"}, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	var paths []string
	for _, d := range s.Linux.Devices {
		paths = append(paths, d.Path)
	}
	if diff := cmp.Diff([]string{"/dev/nvidiactl", "/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0"}, paths); diff != "" {
		t.Errorf("linux.devices (-want +got):\n%s", diff)
	}
}

func TestWrite(t *testing.T) {
	spec, _ := generateTest(t, nil)
	dir := filepath.Join(t.TempDir(), "a", "cdi")
	if err := Write(dir, spec); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, SpecFile)
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o755, p: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	t.Run("replaces the previous spec", func(t *testing.T) {
		spec.Devices = spec.Devices[:1]
		if err := Write(dir, spec); err != nil {
			t.Fatal(err)
		}
		err := Inject(dir, scratchSpec(), []string{uuid1})
		if !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("Inject of a GPU the new spec lacks = %v, want api.ErrNotFound", err)
		}
		if err := Inject(dir, scratchSpec(), []string{uuid0}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("invalid spec keeps the old one", func(t *testing.T) {
		before, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bad := *spec
		bad.Devices = nil
		if err := Write(dir, &bad); !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("Write = %v, want an error wrapping api.ErrInvalid", err)
		}
		after, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(before) != string(after) {
			t.Error("a refused spec replaced the old one")
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("dir holds %d entries, want only %s", len(entries), SpecFile)
		}
	})
}
