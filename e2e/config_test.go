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

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
)

// TestConfigFileOnly: settings given only in the config file reach the
// container and its monitor. No flag and no variable names them: the
// harness's dirs, cgroup parent, CNI config dir and plugins, and the
// default network's subnet and bridge are in a file instead, with crun for
// the runtime and a simulated GPU machine. A detached container with a GPU
// runs under crun, under the file's cgroup parent, and (where the machine
// has the CNI plugins) on the default network, on the file's subnet and
// bridge; once it is killed, its monitor, which reads the configuration
// its run wrote for it, has deleted it from crun (runc would not find it)
// and released its cgroup, its GPU and (with a network) its network
// namespace and address; rm leaves nothing. Without the CNI plugins (the
// cgroup v2 VM), the rest runs all the same.
func TestConfigFileOnly(t *testing.T) {
	network := !noCNI()
	var e *env
	if network {
		e = netEnv(t)
	} else {
		e = newEnv(t)
	}
	testutil.LookPath(t, "crun")
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
	// Every command of the test, the follower of the logs included, reads
	// the file and nothing else.
	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(caissonBin, append([]string{"--config", conf}, args...)...)
		cmd.Env = environ
		return cmd
	}
	run := func(args ...string) (string, error) {
		cmd := command(args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("caisson %s: %w, stdout %q, stderr %q", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String(), nil
	}
	caisson := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	heldBy := func(id string) (simulated bool, held int) {
		t.Helper()
		var gpus gpuList
		if err := json.Unmarshal([]byte(caisson("gpu", "ls", "--format", "json")), &gpus); err != nil {
			t.Fatal(err)
		}
		for _, d := range gpus.Devices {
			if d.Container == id {
				held++
			}
		}
		return gpus.Simulated, held
	}
	// Before the harness's teardown, which does not read the file (and
	// would not find a container of crun's), remove what a failure left;
	// after a success there is nothing (and the teardown checks it).
	t.Cleanup(func() { _, _ = run("rm", "-f", "web") })

	args := []string{"run", "-d", "--name", "web", "--gpus", "1"}
	if network {
		args = append(args, "--network", "caisson")
	}
	caisson(append(args, "--rootfs", e.rootfs, "sh", "-c", "echo ready; exec sleep 100000")...)
	followUntil(t, command("logs", "-f", "web"), "ready")
	var cs []api.Container
	if err := json.Unmarshal([]byte(caisson("inspect", "web")), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("inspect web: %v (%d containers)", err, len(cs))
	}
	c := cs[0]
	if !strings.HasPrefix(c.CgroupPath, e.cgroupParent+"/") {
		t.Errorf("cgroup %s, want one under the file's parent %s", c.CgroupPath, e.cgroupParent)
	}
	if _, err := os.Stat(filepath.Join(e.run, "runtime", "crun", c.ID)); err != nil {
		t.Errorf("not run by crun: %v", err)
	}
	if simulated, held := heldBy(c.ID); !simulated || held != 1 {
		t.Errorf("simulated %v, %d GPUs held; want one of the simulated machine's", simulated, held)
	}
	if network {
		if ip := containerIP(t, c, "caisson"); !strings.HasPrefix(ip, e.subnetPrefix) {
			t.Errorf("address %s, want one of the file's subnet %s0/24", ip, e.subnetPrefix)
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", e.defaultBridge)); err != nil {
			t.Errorf("the file's bridge %s: %v", e.defaultBridge, err)
		}
	}

	caisson("kill", "-s", "KILL", "web")
	if got := strings.TrimSpace(caisson("wait", "web")); got != "137" {
		t.Errorf("wait: %q, want 137", got)
	}
	if _, held := heldBy(c.ID); held != 0 {
		t.Errorf("%d GPUs still held after the exit; want the monitor to have released them", held)
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
