//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// nriPlugin is the tests' NRI plugin (agenthook/testdata/nriplugin), built
// with NRI's stub; where there is no Go toolchain (the cgroup v2 VM),
// CAISSON_NRI_PLUGIN names a prebuilt one.
func nriPlugin(t testing.TB) string {
	t.Helper()
	if prebuilt := os.Getenv("CAISSON_NRI_PLUGIN"); prebuilt != "" {
		return prebuilt
	}
	bin := filepath.Join(t.TempDir(), "nriplugin")
	build := exec.Command("go", "build", "-o", bin, "../agenthook/testdata/nriplugin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the NRI plugin: %v\n%s", err, out)
	}
	return bin
}

// nriConfig writes a plugin directory with the test plugin under each of
// names ("10-env"), each configured to write into dir, and returns the
// [hooks.nri] section that enables them, with extra keys.
func nriConfig(t testing.TB, dir string, names []string, extra string) string {
	t.Helper()
	bin := nriPlugin(t)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	plugins, conf := filepath.Join(dir, "plugins"), filepath.Join(dir, "conf.d")
	for _, d := range []string{plugins, conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := json.Marshal(map[string]string{"dir": dir})
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(plugins, n), data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(conf, n+".conf"), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("[hooks.nri]\nenable = true\nplugin_path = %q\nplugin_config_path = %q\n%s", plugins, conf, extra)
}

// lines reads a file the plugins write, a line each.
func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// NRI plugins started from the plugin directory adjust a real container:
// a variable and a device node (which opens), an rlimit and an
// annotation, an OCI hook that runs; and they hear of its whole life, in
// order, down to its removal.
func TestNRIAdjusts(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.withConfig(t, nriConfig(t, dir, []string{"10-env", "20-limits", "30-hook", "40-events"}, ""))
	r := e.caisson("run", "--name", "adjusted", "--rootfs", e.rootfs, "sh", "-c",
		`echo "env=$NRI_INJECTED"; head -c 3 /dev/nri-zero | od -An -tx1 | tr -d ' \n'; echo; echo "nofile=$(ulimit -n)"`)
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"env=yes", "000000", "nofile=1024"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the container's output lacks %q:\n%s", want, r.stdout)
		}
	}
	c := e.inspect("adjusted")
	data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Annotations["example.com/nri"] != "limits" {
		t.Errorf("annotations %v lack the plugin's", s.Annotations)
	}
	state, err := os.ReadFile(filepath.Join(dir, "hook-"+c.ID))
	if err != nil || !strings.Contains(string(state), c.ID) {
		t.Errorf("the plugin's OCI hook did not run with the container's state: %q %v", state, err)
	}
	e.ok("rm", "adjusted")
	want := []string{"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", "StopContainer", "RemoveContainer"}
	var got []string
	for _, l := range lines(t, filepath.Join(dir, "events")) {
		name, id, _ := strings.Cut(l, " ")
		if id == c.ID {
			got = append(got, name)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the events the plugin heard: %v, want %v", got, want)
	}

	// A live update is an event too.
	e.ok("run", "-d", "--name", "updated", "--rootfs", e.rootfs, "sleep", "600")
	id := e.inspect("updated").ID
	e.ok("update", "--cpus", "0.5", "updated")
	e.ok("rm", "-f", "updated")
	got = nil
	for _, l := range lines(t, filepath.Join(dir, "events")) {
		if name, cid, _ := strings.Cut(l, " "); cid == id {
			got = append(got, name)
		}
	}
	want = []string{"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", "UpdateContainer", "PostUpdateContainer",
		"StopContainer", "RemoveContainer"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the events of an updated container: %v, want %v", got, want)
	}
}

// A plugin's refusal, and an adjustment that takes what an isolator did
// not grant (a GPU's device node), fail the launch with the plugin's name
// and leave nothing.
func TestNRIRefuses(t *testing.T) {
	for _, tc := range []struct {
		plugin string
		says   []string
	}{
		{"10-veto", []string{"hook nri: an NRI plugin refused the container: containers named refused are not welcome here"}},
		{"10-gpu", []string{"hook nri: NRI plugin 10-gpu: device /dev/nvidia3 is isolator gpu/nvidia's, and it did not grant it"}},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			e := newEnv(t)
			e.withConfig(t, nriConfig(t, t.TempDir(), []string{tc.plugin}, ""))
			r := e.caisson("run", "--rm", "--name", "refused", "--rootfs", e.rootfs, "true")
			if r.code != 125 {
				t.Fatalf("run: %s", r)
			}
			for _, s := range tc.says {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("the error does not say %q: %s", s, r.stderr)
				}
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Errorf("left: %v", left)
			}
		})
	}
}

// A plugin that hangs or crashes in the middle of a creation never holds
// the launch: past the request timeout, or at the crash, it is
// disconnected and the launch goes on without it, unless its failure
// policy asks that the request fail.
func TestNRIHangAndCrash(t *testing.T) {
	for _, tc := range []struct {
		plugin string
		fails  bool
	}{{"10-hang", false}, {"10-hangfail", true}, {"10-crash", false}} {
		t.Run(tc.plugin, func(t *testing.T) {
			e := newEnv(t)
			e.withConfig(t, nriConfig(t, t.TempDir(), []string{tc.plugin}, "request_timeout = \"1s\"\n"))
			r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "echo", "launched")
			if tc.fails {
				if r.code != 125 {
					t.Errorf("run past a hanging plugin whose policy fails the request: %s", r)
				}
			} else if r.code != 0 || !strings.Contains(r.stdout, "launched") {
				t.Errorf("run past a plugin that hangs or crashes: %s", r)
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Errorf("left: %v", left)
			}
		})
	}
}

// On an agent, a plugin that connects to its socket while a task runs is
// synchronised with the task's container, and its unsolicited update (a
// lower memory limit) reaches the container's cgroup through the live
// update.
func TestNRIAgentSyncAndUpdate(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	conf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(conf, []byte("version = 1\n"+nriConfig(t, dir, nil, fmt.Sprintf("socket = %q\n", sock))), 0o600); err != nil {
		t.Fatal(err)
	}
	a := c.addAgent("cpus:2;mem:1g", "CAISSON_CONFIG="+conf)
	tok := c.tenants(twoTenants, "/a")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: synced
groups:
  - name: g
    count: 1
    resources: {cpus: 0.5, memory: 96m}
    rootfs: %s
    command: [sleep, "600"]
`, c.e.rootfs))
	tk := c.waitTasks(id, api.TaskRunning, 1)[0]

	plugin := exec.Command(nriPlugin(t), "-name", "sync", "-idx", "50", "-socket", sock, "-config", fmt.Sprintf(`{"dir": %q}`, dir))
	plugin.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := plugin.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-plugin.Process.Pid, syscall.SIGKILL); _ = plugin.Wait() })
	c.eventually("the plugin's update is applied", func() bool {
		_, err := os.Stat(filepath.Join(dir, "updated"))
		return err == nil
	})
	if got := lines(t, filepath.Join(dir, "synced")); len(got) != 1 || got[0] != tk.Container+" CONTAINER_RUNNING" {
		t.Errorf("the plugin was synchronised with %v, want the task's running container %s", got, tk.Container)
	}
	if got := lines(t, filepath.Join(dir, "updated")); got[0] != "failed=0 err=<nil>" {
		t.Errorf("the unsolicited update: %v", got)
	}
	ct := a.e.inspect(tk.Container)
	if got := readCgroupFile(t, ct.CgroupPath, "memory", "memory.limit_in_bytes"); got != fmt.Sprint(64<<20) {
		t.Errorf("memory.limit_in_bytes = %s after the plugin's update, want %d", got, 64<<20)
	}
	// The agent's metrics show the plugin: registered (with caisson's
	// own validator), and its synchronisation.
	if got := a.metric(t, "caisson_agent_nri_plugins"); got != "2" {
		t.Errorf("caisson_agent_nri_plugins = %q, want 2", got)
	}
	if got := a.metric(t, `caisson_agent_nri_plugin_requests_total{operation="Synchronize",plugin="50-sync",result="ok"}`); got != "1" {
		t.Errorf("the plugin's synchronisations in the metrics: %q, want 1", got)
	}
	c.e.ok("session", "kill", "--token-file", tok["/a"], id)
	c.waitTasks(id, api.TaskKilled, 1)
}
