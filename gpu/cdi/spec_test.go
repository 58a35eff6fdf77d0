package cdi

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

var update = flag.Bool("update", false, "rewrite testdata/spec.golden.json")

// testDevRoot is where simulated GPUs' nodes would be: host paths differ
// from container paths.
const testDevRoot = "/run/caisson/gpu/dev"

var testMajors = Majors{GPU: 195, UVM: 242, Caps: 243}

// driverRootVar stands for the temporary driver root in the golden file.
const driverRootVar = "$DRIVER_ROOT"

// generateTest generates the spec of testInventory over a fake x86-64
// driver root.
func generateTest(t *testing.T, base *cdispecs.Spec) (*cdispecs.Spec, Files) {
	t.Helper()
	root := fakeDriverRoot(t, encodeLDCache(testLDEntries, false))
	files, err := DriverFiles(root, testDriverVersion, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Generate(testInventory(), testDevRoot, testMajors, testCaps(t), files, base)
	if err != nil {
		t.Fatal(err)
	}
	return spec, files
}

// TestGenerateGolden compares the generated spec with
// testdata/spec.golden.json (go test ./gpu/cdi -run Golden -update
// rewrites it).
func TestGenerateGolden(t *testing.T) {
	spec, files := generateTest(t, nil)
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(b), files.Root, driverRootVar) + "\n"
	golden := filepath.Join("testdata", "spec.golden.json")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var wantSpec, gotSpec cdispecs.Spec
	if err := json.Unmarshal(want, &wantSpec); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got), &gotSpec); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantSpec, gotSpec); diff != "" {
		t.Errorf("Generate (-%s +got):\n%s", golden, diff)
	}
}

// TestGenerateFacts states, independently of the golden file, what the spec
// must hold.
func TestGenerateFacts(t *testing.T) {
	spec, files := generateTest(t, nil)
	if spec.Kind != Kind || spec.Version != cdispecs.CurrentVersion {
		t.Errorf("kind %q version %q, want %q %q", spec.Kind, spec.Version, Kind, cdispecs.CurrentVersion)
	}
	var names []string
	for _, d := range spec.Devices {
		names = append(names, d.Name)
		for _, n := range d.ContainerEdits.DeviceNodes {
			if n.Type != "c" || n.Major == 0 || n.Permissions != "rwm" || n.FileMode == nil || *n.FileMode != 0o666 {
				t.Errorf("device %s: node %+v is not fully specified", d.Name, n)
			}
		}
	}
	// GPU 2 is in MIG mode: its MIG devices are there, not itself.
	if diff := cmp.Diff([]string{uuid0, uuid1, mig0, mig1, mig2}, names); diff != "" {
		t.Errorf("device names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"NVIDIA_VISIBLE_DEVICES=void"}, spec.ContainerEdits.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	n := len(files.Libraries) + len(files.Links) + len(files.Binaries) + len(files.Firmware) + len(files.Sockets)
	if len(spec.ContainerEdits.Mounts) != n {
		t.Errorf("%d mounts, want one per driver file (%d)", len(spec.ContainerEdits.Mounts), n)
	}
	for _, m := range spec.ContainerEdits.Mounts {
		rel, err := filepath.Rel(files.Root, m.HostPath)
		if err != nil || "/"+rel != m.ContainerPath {
			t.Errorf("mount %s -> %s is not at its path under the driver root", m.HostPath, m.ContainerPath)
		}
		if diff := cmp.Diff([]string{"ro", "nosuid", "nodev", "rbind"}, m.Options); diff != "" {
			t.Errorf("mount %s options (-want +got):\n%s", m.HostPath, diff)
		}
	}
}

func TestGenerateInvalid(t *testing.T) {
	files := Files{Root: "/"}
	dup := testInventory()
	dup.Devices[1].UUID = uuid0
	badName := testInventory()
	badName.Devices[0].UUID = "GPU-1/2"
	migOnly := testInventory()
	migOnly.Devices = migOnly.Devices[2:]
	for _, tc := range []struct {
		name  string
		inv   *gpu.Inventory
		m     Majors
		files Files
		base  *cdispecs.Spec
	}{
		{"nil inventory", nil, testMajors, files, nil},
		{"no GPUs", &gpu.Inventory{}, testMajors, files, nil},
		{"no GPU major", testInventory(), Majors{}, files, nil},
		{"duplicate UUID", dup, testMajors, files, nil},
		{"UUID that is no device name", badName, testMajors, files, nil},
		{"only MIG devices, without caps", migOnly, Majors{GPU: 195}, files, nil},
		{"file outside the root", testInventory(), testMajors, Files{Root: "/run/driver", Libraries: []string{"/usr/lib/libcuda.so.1"}}, nil},
		{"base of another kind", testInventory(), testMajors, files, &cdispecs.Spec{Version: "0.5.0", Kind: "vendor.com/device"}},
		{"base with a bad hook", testInventory(), testMajors, files, &cdispecs.Spec{
			Version: "0.5.0", Kind: Kind,
			ContainerEdits: cdispecs.ContainerEdits{Hooks: []*cdispecs.Hook{{HookName: "whenever", Path: "/bin/true"}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(tc.inv, "/dev", tc.m, testCaps(t), tc.files, tc.base)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Generate = %v, want an error wrapping api.ErrInvalid", err)
			}
		})
	}
}

// testBaseYAML is what `nvidia-ctk cdi generate` writes, shortened: devices
// by index and UUID with the host's real nodes, spec-level control nodes,
// hooks and library mounts.
const testBaseYAML = `---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: GPU-3f1d2a54-6c1e-4b8e-9a51-0c6f5a2b7d10
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/nvidia1
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  - NVIDIA_CTK_LIBCUDA_DIR=/usr/lib/x86_64-linux-gnu
  deviceNodes:
  - path: /dev/nvidiactl
  - path: /dev/nvidia-uvm
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - create-symlinks
    - --link
    - libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/lib/x86_64-linux-gnu
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options:
    - ro
    - nosuid
    - nodev
    - bind
  - hostPath: /usr/bin/nvidia-smi
    containerPath: /usr/bin/nvidia-smi
    options:
    - ro
    - nosuid
    - nodev
    - bind
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGenerateWithBase(t *testing.T) {
	base, err := LoadBase(context.Background(), writeFile(t, "nvidia.yaml", testBaseYAML))
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := generateTest(t, base)
	plain, _ := generateTest(t, nil)

	// The base's mounts, hooks and other env; our devices and nodes.
	if diff := cmp.Diff(base.ContainerEdits.Mounts, spec.ContainerEdits.Mounts); diff != "" {
		t.Errorf("mounts (-base +got):\n%s", diff)
	}
	if diff := cmp.Diff(base.ContainerEdits.Hooks, spec.ContainerEdits.Hooks); diff != "" {
		t.Errorf("hooks (-base +got):\n%s", diff)
	}
	wantEnv := []string{"NVIDIA_CTK_LIBCUDA_DIR=/usr/lib/x86_64-linux-gnu", "NVIDIA_VISIBLE_DEVICES=void"}
	if diff := cmp.Diff(wantEnv, spec.ContainerEdits.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(plain.Devices, spec.Devices); diff != "" {
		t.Errorf("devices differ from the generated ones (-generated +got):\n%s", diff)
	}
	if diff := cmp.Diff(plain.ContainerEdits.DeviceNodes, spec.ContainerEdits.DeviceNodes); diff != "" {
		t.Errorf("control nodes differ from the generated ones (-generated +got):\n%s", diff)
	}
	if spec.Version != cdispecs.CurrentVersion {
		t.Errorf("version %q, want %q", spec.Version, cdispecs.CurrentVersion)
	}
	// The result does not share the base's slices.
	spec.ContainerEdits.Mounts[0].Options[0] = "rw"
	spec.ContainerEdits.Hooks[0].Args[0] = "x"
	if base.ContainerEdits.Mounts[0].Options[0] != "ro" || base.ContainerEdits.Hooks[0].Args[0] != "nvidia-cdi-hook" {
		t.Error("Generate's result aliases the base spec")
	}
}

func TestLoadBase(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		y, err := LoadBase(context.Background(), writeFile(t, "nvidia.yaml", testBaseYAML))
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(y)
		if err != nil {
			t.Fatal(err)
		}
		j, err := LoadBase(context.Background(), writeFile(t, "nvidia.json", string(b)))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(y, j); diff != "" {
			t.Errorf("json (-yaml +json):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name, content string
	}{
		{"another kind", strings.Replace(testBaseYAML, "kind: nvidia.com/gpu", "kind: vendor.com/fpga", 1)},
		{"not yaml", "{{{ nope"},
		{"unknown field", testBaseYAML + "bogus: 1\n"},
		{"empty", ""},
		{"no devices", "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n"},
		{"bad version", strings.Replace(testBaseYAML, "cdiVersion: 0.5.0", "cdiVersion: 9.9.9", 1)},
		{"device without edits", "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "nvidia.yaml", tc.content)
			_, err := LoadBase(context.Background(), p)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("LoadBase = %v, want an error wrapping api.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "nvidia.yaml")
		_, err := LoadBase(context.Background(), p)
		if !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("LoadBase = %v, want an error wrapping api.ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	})
}
