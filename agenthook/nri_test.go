package agenthook

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nriapi "github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// The plugins' combined adjustment splits by the plugin that made each
// part, as NRI's owners say, into what the containerizer applies.
func TestSplitAdjustment(t *testing.T) {
	a := &nriapi.ContainerAdjustment{}
	a.AddEnv("A", "1")
	a.RemoveEnv("B")
	a.AddAnnotation("example.com/x", "y")
	a.AddMount(&nriapi.Mount{Destination: "/data", Source: "/srv", Type: "bind", Options: []string{"rbind"}})
	a.AddDevice(&nriapi.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229})
	a.AddRlimit("RLIMIT_NOFILE", 2048, 1024)
	a.SetLinuxCPUSetCPUs("0-1")
	a.SetLinuxMemoryLimit(64 << 20)
	owners := &nriapi.OwningPlugins{Owners: map[string]*nriapi.FieldOwners{}}
	for _, claim := range []error{
		owners.ClaimEnv("c", "A", "10-env"), owners.ClaimEnv("c", "B", "10-env"),
		owners.ClaimAnnotation("c", "example.com/x", "20-limits"), owners.ClaimMount("c", "/data", "20-limits"),
		owners.ClaimDevice("c", "/dev/fuse", "10-env"), owners.ClaimRlimit("c", "RLIMIT_NOFILE", "20-limits"),
		owners.ClaimCPUSetCPUs("c", "30-pin"), owners.ClaimMemLimit("c", "30-pin"),
	} {
		if claim != nil {
			t.Fatal(claim)
		}
	}
	parts, err := splitAdjustment(a, owners, "c")
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(64 << 20)
	want := map[string]*containerizer.Adjustment{
		"10-env": {Env: map[string]string{"A": "1"}, RemoveEnv: []string{"B"}, Devices: []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}},
		"20-limits": {Annotations: map[string]string{"example.com/x": "y"}, Mounts: []specs.Mount{{Destination: "/data", Source: "/srv", Type: "bind", Options: []string{"rbind"}}},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 2048, Soft: 1024}}},
		"30-pin": {Resources: &containerizer.ResourcesAdjustment{Cpus: "0-1", MemoryLimit: &limit}},
	}
	if diff := cmp.Diff(want, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	whole, err := toAdjustment(a)
	if err != nil || whole.Env["A"] != "1" || whole.Resources.Cpus != "0-1" || len(whole.Devices) != 1 {
		t.Errorf("the whole adjustment: %+v, %v", whole, err)
	}
}

// What caisson does not apply is refused, naming the plugin that set it.
func TestSplitAdjustmentRefuses(t *testing.T) {
	for _, tc := range []struct {
		what   string
		adjust func(*nriapi.ContainerAdjustment)
		claim  func(*nriapi.OwningPlugins) error
		says   string
	}{
		{"the CPU quota", func(a *nriapi.ContainerAdjustment) { a.SetLinuxCPUQuota(50000) },
			func(o *nriapi.OwningPlugins) error { return o.ClaimCPUQuota("c", "10-quota") }, "NRI plugin 10-quota sets the CPU quota"},
		{"the arguments", func(a *nriapi.ContainerAdjustment) { a.SetArgs([]string{"sh"}) },
			func(o *nriapi.OwningPlugins) error { return o.ClaimArgs("c", "10-args") }, "NRI plugin 10-args sets the command's arguments"},
		{"a device's removal", func(a *nriapi.ContainerAdjustment) { a.RemoveDevice("/dev/nvidia0") },
			func(o *nriapi.OwningPlugins) error { return o.ClaimDevice("c", "/dev/nvidia0", "10-dev") }, "NRI plugin 10-dev sets the removal of device /dev/nvidia0"},
		{"a sysctl", func(a *nriapi.ContainerAdjustment) { a.SetLinuxSysctl("net.core.somaxconn", "1024") },
			func(o *nriapi.OwningPlugins) error { return o.ClaimSysctl("c", "net.core.somaxconn", "10-net") }, "NRI plugin 10-net sets sysctl net.core.somaxconn"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			a := &nriapi.ContainerAdjustment{}
			tc.adjust(a)
			owners := &nriapi.OwningPlugins{Owners: map[string]*nriapi.FieldOwners{}}
			if err := tc.claim(owners); err != nil {
				t.Fatal(err)
			}
			_, err := splitAdjustment(a, owners, "c")
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want one that says %q", err, tc.says)
			}
		})
	}
}

// The agent does not take over the socket of a runtime that listens on
// it.
func TestNRISocketInUse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, err := New(Config{NRI: NRIConfig{Enable: true, PluginPath: t.TempDir(), PluginConfigPath: t.TempDir(), SocketPath: sock}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.StartNRI(nil, true); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "another runtime listens on") {
		t.Errorf("StartNRI on a socket in use = %v", err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the other runtime's socket is gone: %v", err)
	}
}
