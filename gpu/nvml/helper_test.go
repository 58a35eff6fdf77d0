//go:build cgo && linux

package nvml

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caisson/caisson/gpu"
)

// buildHelper builds cmd/caisson-nvml for this machine.
func buildHelper(t *testing.T) string {
	t.Helper()
	if os.Getenv("CAISSON_TEST_PURE") == "1" {
		t.Skip("CAISSON_TEST_PURE=1 (under qemu-user): caisson-nvml is cross-built by make cross instead")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build caisson-nvml with")
	}
	host, err := exec.Command(goBin, "env", "GOHOSTARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	if arch := strings.TrimSpace(string(host)); arch != runtime.GOARCH {
		t.Skipf("the go command builds for %s, this test runs as %s (emulated)", arch, runtime.GOARCH)
	}
	bin := filepath.Join(t.TempDir(), "caisson-nvml")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/caisson/caisson/cmd/caisson-nvml")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_CFLAGS=-Wno-deprecated-declarations")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build caisson-nvml: %v\n%s", err, out)
	}
	return bin
}

// exitCode runs the helper and returns its stdout and exit status.
func exitCode(t *testing.T, bin string, args ...string) ([]byte, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out, 0
}

func TestHelper(t *testing.T) {
	bin := buildHelper(t)

	t.Run("inventory without a driver", func(t *testing.T) {
		out, code := exitCode(t, bin, "inventory", "--backend", "nvml")
		if code != 0 {
			t.Fatalf("exit %d, want 0 (never 127: no NVML call after a failed Init)", code)
		}
		var inv gpu.Inventory
		if err := json.Unmarshal(out, &inv); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if _, err := os.Stat("/dev/nvidiactl"); err == nil {
			t.Skip("this host has an NVIDIA driver")
		}
		if len(inv.Devices) != 0 || inv.Reason == "" || inv.Simulated {
			t.Errorf("without a driver: %+v, want no devices and a reason", inv)
		}
		for _, cmd := range []string{"stats", "watch"} {
			if _, code := exitCode(t, bin, cmd); code != 1 {
				t.Errorf("%s without a driver: exit %d, want 1", cmd, code)
			}
		}
	})

	t.Run("inventory simulated", func(t *testing.T) {
		out, code := exitCode(t, bin, "--backend", BackendDGXA100, "inventory")
		var inv gpu.Inventory
		if err := json.Unmarshal(out, &inv); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if len(inv.Devices) != 8 || !inv.Simulated || inv.Devices[3].UUID != uuids(t, BackendDGXA100)[3] {
			t.Errorf("dgxa100: %d devices, simulated %v, %+v", len(inv.Devices), inv.Simulated, inv.Devices)
		}
	})

	t.Run("inventory with a MIG layout", func(t *testing.T) {
		ids := uuids(t, BackendDGXA100)
		dir := t.TempDir()
		writeLayout(t, dir, gpu.MIGLayout{ids[0]: {"1g.5gb", "3g.20gb"}})
		out, code := exitCode(t, bin, "inventory", "--backend", BackendDGXA100, "--sim-dir", dir)
		var inv gpu.Inventory
		if err := json.Unmarshal(out, &inv); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if d := inv.Devices[0]; !d.MIG || len(d.MIGDevices) != 2 || d.MIGDevices[1].Profile != "3g.20gb" || inv.Devices[1].MIG {
			t.Errorf("GPU 0 %+v, GPU 1 MIG %v", d, inv.Devices[1].MIG)
		}
		// A layout the GPU cannot hold is invalid input: exit 3, and one
		// line that says why.
		writeLayout(t, dir, gpu.MIGLayout{ids[0]: {"4g.20gb", "4g.20gb"}})
		cmd := exec.Command(bin, "inventory", "--backend", BackendDGXA100, "--sim-dir", dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != gpu.HelperExitInvalid || strings.Count(stderr.String(), "\n") != 1 ||
			!strings.Contains(stderr.String(), "holds at most 1 GPU instance of profile 4g.20gb") {
			t.Errorf("impossible layout: %v, stderr %q; want exit %d and why", err, stderr.String(), gpu.HelperExitInvalid)
		}
	})

	t.Run("probe simulated", func(t *testing.T) {
		ids := uuids(t, BackendDGXB200)
		dir := t.TempDir()
		writeFaults(t, dir, map[string]string{ids[1]: "XID 79"})
		out, code := exitCode(t, bin, "probe", "--backend", BackendDGXB200, "--sim-dir", dir, "--uuid", ids[1])
		var p gpu.Probe
		if err := json.Unmarshal(out, &p); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if p.OK || !strings.Contains(p.Reason, "XID 79") {
			t.Errorf("faulted GPU: %+v", p)
		}
	})

	t.Run("watch", func(t *testing.T) {
		ids := uuids(t, BackendDGXA100)
		dir := t.TempDir()
		writeFaults(t, dir, map[string]string{ids[7]: "gone"})
		cmd := exec.Command(bin, "watch", "--backend", BackendDGXA100, "--sim-dir", dir)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := bufio.NewReader(stdout)
		next := func() gpu.Event {
			t.Helper()
			line, err := lines.ReadBytes('\n')
			if err != nil {
				t.Fatalf("read an event: %v", err)
			}
			var e gpu.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			return e
		}
		// The lost GPU is reported first: the watch has started.
		if e := next(); e.Type != gpu.EventUnwatched || e.UUID != ids[7] {
			t.Fatalf("first event %+v, want GPU 7 unwatched", e)
		}
		if e := next(); e.Type != gpu.EventReady {
			t.Fatalf("second event %+v, want ready", e)
		}
		appendEvents(t, dir, eventLine(t, gpu.Event{UUID: ids[2], Type: gpu.EventXID, XID: 79}))
		if e := next(); e.Type != gpu.EventXID || e.UUID != ids[2] || e.XID != 79 {
			t.Errorf("event %+v, want XID 79 on GPU 2", e)
		}
		// The parent closes stdin: the helper stops.
		if err := stdin.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := lines.ReadBytes('\n'); err == nil {
			t.Error("an event after stdin was closed")
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("watch after stdin closed: %v, want exit 0", err)
		}
	})

	t.Run("bad usage", func(t *testing.T) {
		for _, args := range [][]string{
			{},
			{"frobnicate"},
			{"--backend", "mock:dgx9000", "inventory"},
			{"inventory", "--no-such-flag"},
			{"probe", "--backend", BackendDGXA100},
			{"stats", "extra"},
		} {
			if _, code := exitCode(t, bin, args...); code != 2 {
				t.Errorf("caisson-nvml %q: exit %d, want 2", args, code)
			}
		}
		out, code := exitCode(t, bin, "--help")
		if code != 0 || !strings.Contains(string(out), "Caisson's NVML helper") {
			t.Errorf("--help: exit %d:\n%s", code, out)
		}
	})
}
