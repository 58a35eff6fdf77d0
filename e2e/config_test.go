//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/internal/cnitest"
)

// TestConfigFileOnly: settings given only in the config file reach the
// container and its monitor. No flag and no variable names them: the
// harness's dirs, cgroup parent, CNI config dir and plugins, and the
// default network's subnet and bridge are in a file instead, with crun for
// the runtime and a simulated GPU machine. A detached container with a GPU
// on the default network runs under crun, under the file's cgroup parent,
// on the file's subnet and bridge; once it is killed, its monitor, which
// reads the configuration its run wrote for it, has deleted it from crun
// (runc would not find it) and released its cgroup, its network namespace,
// its address and its GPU; rm leaves nothing.
func TestConfigFileOnly(t *testing.T) {
	e := netEnv(t)
	requiresCNI(t)
	conf := filepath.Join(t.TempDir(), "config.toml")
	content := fmt.Sprintf(`version = 1
[state]
root = %q
run_root = %q
[runtime]
binary = "crun"
[gpu]
backend = "mock:dgxa100"
[cgroups]
parent = %q
[cni]
config_dir = %q
plugin_dirs = [%q]
default_subnet = %q
default_bridge = %q
`, e.root, e.run, e.cgroupParent, e.cniConf, cnitest.DebianPlugins, e.subnetPrefix+"0/24", e.defaultBridge)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var environ []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "CAISSON_") {
			environ = append(environ, v)
		}
	}
	caisson := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(caissonBin, append([]string{"--config", conf}, args...)...)
		cmd.Env = environ
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("caisson %s: %v, stdout %q, stderr %q", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}

	caisson("run", "-d", "--name", "web", "--network", "caisson", "--gpus", "1", "--rootfs", e.rootfs, "sh", "-c", "echo ready; exec sleep 100000")
	e.waitForLine("web", "ready")
	c := e.inspect("web")
	if !strings.HasPrefix(c.CgroupPath, e.cgroupParent+"/") {
		t.Errorf("cgroup %s, want one under the file's parent %s", c.CgroupPath, e.cgroupParent)
	}
	if ip := containerIP(t, c, "caisson"); !strings.HasPrefix(ip, e.subnetPrefix) {
		t.Errorf("address %s, want one of the file's subnet %s0/24", ip, e.subnetPrefix)
	}
	if _, err := os.Stat(filepath.Join(e.run, "runtime", "crun", c.ID)); err != nil {
		t.Errorf("not run by crun: %v", err)
	}
	var gpus gpuList
	if err := json.Unmarshal([]byte(caisson("gpu", "ls", "--format", "json")), &gpus); err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, d := range gpus.Devices {
		if d.Container == c.ID {
			held++
		}
	}
	if !gpus.Simulated || held != 1 {
		t.Errorf("simulated %v, %d GPUs held; want one of the simulated machine's", gpus.Simulated, held)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", e.defaultBridge)); err != nil {
		t.Errorf("the file's bridge %s: %v", e.defaultBridge, err)
	}

	caisson("kill", "-s", "KILL", "web")
	if got := strings.TrimSpace(caisson("wait", "web")); got != "137" {
		t.Errorf("wait: %q, want 137", got)
	}
	// The monitor has cleaned up: nothing of the container is left but
	// its directory (its logs, its writes and its exit status) and the
	// work dir's record that it owns it.
	var left []string
	for _, l := range e.networkLeaks() {
		if l != "container dir "+c.ID && l != "owned "+c.ID {
			left = append(left, l)
		}
	}
	if len(left) > 0 {
		t.Errorf("left behind by the monitor:\n  %s", strings.Join(left, "\n  "))
	}
	caisson("rm", "web")
	if left := e.networkLeaks(); len(left) > 0 {
		t.Fatalf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
}
