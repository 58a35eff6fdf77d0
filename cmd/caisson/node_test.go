package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// runCaisson runs the CLI in this process and returns what it printed.
func runCaisson(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestNodeResourcesFixtures runs caisson node resources --format json on
// every resources fixture and compares with its expected.json; only the
// disk, which is this machine's here, differs.
func TestNodeResourcesFixtures(t *testing.T) {
	clearSettingsEnv(t)
	goldens, err := filepath.Glob("../../resources/testdata/*/expected.json")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, golden := range goldens {
		dir := filepath.Dir(golden)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, err := runCaisson(t, "--path.procfs", filepath.Join(dir, "proc"), "--path.sysfs", filepath.Join(dir, "sys"),
				"--root", t.TempDir(), "node", "resources", "--format", "json")
			if err != nil {
				t.Fatal(err)
			}
			var got, want api.NodeResources
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if got.DiskBytes <= 0 {
				t.Errorf("disk_bytes %d, want > 0", got.DiskBytes)
			}
			got.DiskBytes = want.DiskBytes
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-%s +got):\n%s", golden, diff)
			}
			if !strings.Contains(out, `"gpus": []`) {
				t.Errorf("gpus is not an empty list in %s", out)
			}
		})
	}
}

func TestNodeResourcesTable(t *testing.T) {
	clearSettingsEnv(t)
	dir := "../../resources/testdata/power9-ac922"
	t.Setenv("CAISSON_PATH_PROCFS", filepath.Join(dir, "proc"))
	t.Setenv("CAISSON_PATH_SYSFS", filepath.Join(dir, "sys"))
	out, err := runCaisson(t, "--root", t.TempDir(), "--resources", "disk:1t", "--reserve", "cpus:8;mem:16g;ports:[31000-31099]",
		"node", "resources")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range []string{
		"CPUS 120", "MEMORY 493.8GiB", "DISK 1TiB", "PORTS 31100-32000", "GPUS 0", "ARCH ppc64le", "CPU MODEL POWER9, altivec supported",
		"CPU PLATFORM PowerNV", "MACHINE MODEL 8335-GTH", "MMU Radix", "SMT 4 threads per core (4 online), 32 cores",
		"PAGE SIZE 64KiB", "HUGE PAGES 2MiB, 1GiB", "NUMA NODE CPUS MEMORY", "0 0-63 254.5GiB", "8 64-127 255.3GiB",
		"252 - 15.75GiB no CPUs: kept out of cpusets",
	} {
		if !lines[want] {
			t.Errorf("no line %q in:\n%s", want, out)
		}
	}
}

func TestNodeResourcesBadInput(t *testing.T) {
	clearSettingsEnv(t)
	dir := "../../resources/testdata/x86-xeon-2s"
	fixture := []string{"--path.procfs", filepath.Join(dir, "proc"), "--path.sysfs", filepath.Join(dir, "sys"), "--root", t.TempDir()}
	for _, args := range [][]string{
		{"--reserve", "cpus:64", "node", "resources"},
		{"--resources", "mem:16384", "node", "resources"},
		{"node", "resources", "--format", "yaml"},
	} {
		_, err := runCaisson(t, append(append([]string{}, fixture...), args...)...)
		if !errors.Is(err, api.ErrInvalid) || exitCode(err) != exitCaissonError {
			t.Errorf("caisson %v = %v (exit %d), want api.ErrInvalid and exit 125", args, err, exitCode(err))
		}
	}
}
