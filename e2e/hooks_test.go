//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caisson/caisson/agenthook"
	"github.com/caisson/caisson/api"
)

// hookScript writes an executable shell script into dir and returns its
// path.
func hookScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// withConfig points e's commands at a config file with the given body
// (after version = 1).
func (e *env) withConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("version = 1\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "CAISSON_CONFIG="+path)
	return path
}

// readRequest reads what a hook saved of its request.
func readRequest(t *testing.T, path string) agenthook.Request {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r agenthook.Request
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return r
}

// The admin's hooks from the config file act on a real container: the
// pre-launch hook's variable, label and mount are in it, the OCI hook ran
// with its state, the post-launch hook saw it run and the post-stop hook
// its exit status, all before caisson run returned.
func TestHooksDecorate(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shared, "licence"), []byte("site-licence-42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pre := hookScript(t, dir, "pre", `cat > `+dir+`/pre.json
echo '{"env": {"RACK": "r12"}, "labels": {"team": "ml"},
       "mounts": [{"source": "`+shared+`", "destination": "/licence", "options": ["rbind", "ro"]}]}'`)
	post := hookScript(t, dir, "post", `cat > `+dir+`/$CAISSON_HOOK_POINT.json`)
	oci := hookScript(t, dir, "oci", `cat > `+dir+`/oci-state.json`)
	e.withConfig(t, fmt.Sprintf(`
[[hooks.exec]]
name = "rack"
point = "pre-launch"
path = %q
[[hooks.exec]]
point = "post-launch"
path = %q
[[hooks.exec]]
point = "post-stop"
path = %q
[[hooks.oci]]
stage = "createRuntime"
path = %q
`, pre, post, post, oci))

	ls := e.ok("hooks", "ls")
	for _, want := range []string{"pre-launch", "rack", "post-stop", "createRuntime", "oci-hooks"} {
		if !strings.Contains(ls, want) {
			t.Errorf("hooks ls does not show %s:\n%s", want, ls)
		}
	}

	r := e.caisson("run", "--name", "hooked", "--label", "team=web", "--rootfs", e.rootfs, "sh", "-c", `echo "rack=$RACK"; cat /licence/licence; exit 3`)
	if r.code != 3 || !strings.Contains(r.stdout, "rack=r12") || !strings.Contains(r.stdout, "site-licence-42") {
		t.Fatalf("run: %s", r)
	}
	c := e.inspect("hooked")
	if c.Spec.Labels["team"] != "ml" {
		t.Errorf("labels %v: want the hook's team=ml", c.Spec.Labels)
	}
	req := readRequest(t, filepath.Join(dir, "pre.json"))
	if req.Point != agenthook.PointPreLaunch || req.Container == nil || req.Container.ID != c.ID || req.Spec == nil ||
		!strings.Contains(strings.Join(req.Spec.Process.Args, " "), "exit 3") {
		t.Errorf("pre-launch request: %+v", req)
	}
	req = readRequest(t, filepath.Join(dir, "post-launch.json"))
	if req.Container == nil || req.Container.ID != c.ID || req.Container.Pid <= 0 {
		t.Errorf("post-launch request: %+v", req.Container)
	}
	req = readRequest(t, filepath.Join(dir, "post-stop.json"))
	if req.Termination == nil || req.Termination.ExitCode != 3 || req.Termination.Reason != api.ReasonExited || req.Usage == nil {
		t.Errorf("post-stop request: termination %+v, usage %+v", req.Termination, req.Usage)
	}
	var state struct {
		ID  string `json:"id"`
		Pid int    `json:"pid"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "oci-state.json"))
	if err != nil {
		t.Fatalf("the OCI hook did not run: %v", err)
	}
	if err := json.Unmarshal(data, &state); err != nil || state.ID != c.ID || state.Pid <= 0 {
		t.Errorf("the OCI hook's state: %s (%v)", data, err)
	}
	e.ok("rm", "hooked")
}

// A veto refuses the launch with its reason and the hook's name, and
// leaves nothing; a hook that hangs is killed at its timeout with what it
// started, and fails the launch, or is ignored as its policy says.
func TestHooksVetoAndTimeout(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	veto := hookScript(t, dir, "friday", `echo '{"veto": "no launches on Fridays"}'`)
	path := e.withConfig(t, fmt.Sprintf(`
[[hooks.exec]]
point = "pre-launch"
path = %q
`, veto))
	r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "hook friday: vetoed the launch: no launches on Fridays") {
		t.Fatalf("vetoed run: %s", r)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Errorf("left after the veto: %v", left)
	}

	hang := hookScript(t, dir, "hang", `setsid sh -c 'echo $$ > `+dir+`/daemon.pid; exec sleep 1000' </dev/null >/dev/null 2>&1 &
while ! test -s `+dir+`/daemon.pid; do :; done
exec sleep 1000`)
	for _, policy := range []string{"fail", "ignore"} {
		_ = os.Remove(filepath.Join(dir, "daemon.pid"))
		if err := os.WriteFile(path, []byte(fmt.Sprintf("version = 1\n[[hooks.exec]]\npoint = \"pre-launch\"\npath = %q\ntimeout = \"1s\"\non_failure = %q\n", hang, policy)), 0o600); err != nil {
			t.Fatal(err)
		}
		r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "echo", "launched")
		switch policy {
		case "fail":
			if r.code != 125 || !strings.Contains(r.stderr, "hook hang: pre-launch hook: timed out after 1s") {
				t.Errorf("hanging hook, policy fail: %s", r)
			}
		case "ignore":
			if r.code != 0 || !strings.Contains(r.stdout, "launched") {
				t.Errorf("hanging hook, policy ignore: %s", r)
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, "daemon.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		if pid <= 0 || processAlive(pid) {
			t.Errorf("policy %s: the daemon the hook started (%d) outlived it", policy, pid)
		}
		if left := e.leftovers(); len(left) > 0 {
			t.Errorf("policy %s: left: %v", policy, left)
		}
	}
}

// A bad [hooks] section stops every command at its start, with the file,
// line and key at fault.
func TestHooksBadConfig(t *testing.T) {
	e := newEnv(t)
	path := e.withConfig(t, `
[[hooks.exec]]
point = "pre-start"
path = "/no/such/hook"
timeout = "1ms"
`)
	r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "true")
	for _, want := range []string{
		path + ":4: hooks.exec[0].point", "unknown hook point",
		path + ":5: hooks.exec[0].path", "no such file",
		path + ":6: hooks.exec[0].timeout",
	} {
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("run with a bad hooks section: want %q in\n%s", want, r)
		}
	}
}

// On an agent, the agent-register hook's label and resources reach the
// scheduler: the agents list shows them, and a session constrained to the
// label runs there; the pre-launch hook is told the task it launches.
func TestClusterAgentHooks(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	register := hookScript(t, dir, "rack", `cat > `+dir+`/register.json
echo '{"labels": {"rack": "r12"}, "resources": {"cpus": 1.5}}'`)
	pre := hookScript(t, dir, "pre", `cat > `+dir+`/pre.json`)
	conf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`version = 1
[[hooks.exec]]
point = "agent-register"
path = %q
[[hooks.exec]]
point = "pre-launch"
path = %q
`, register, pre)), 0o600); err != nil {
		t.Fatal(err)
	}
	hooked := c.addAgent("cpus:2;mem:1g", "CAISSON_CONFIG="+conf)
	c.addAgent("cpus:2;mem:1g")
	var seen *api.Agent
	for _, a := range c.agentList() {
		if a.ID == hooked.id(t) {
			seen = &a
		}
	}
	if seen == nil || seen.Attributes["rack"] != "r12" || seen.Resources.CPUs != 1.5 {
		t.Fatalf("the hooked agent as the master lists it: %+v", seen)
	}
	req := readRequest(t, filepath.Join(dir, "register.json"))
	if req.Point != agenthook.PointAgentRegister || req.Agent == nil || req.Agent.Resources.CPUs != 2 {
		t.Errorf("agent-register request: %+v", req.Agent)
	}

	tok := c.tenants(twoTenants, "/a")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: racked
groups:
  - name: g
    count: 1
    resources: {cpus: 0.5, memory: 64m}
    rootfs: %s
    command: [sleep, "600"]
    constraints:
      - {attribute: rack, op: in, values: [r12]}
`, c.e.rootfs))
	tk := c.waitTasks(id, api.TaskRunning, 1)[0]
	if tk.Agent != hooked.id(t) {
		t.Errorf("task %s runs on %s, not on the agent labelled rack=r12 (%s)", tk.ID, tk.Agent, hooked.id(t))
	}
	req = readRequest(t, filepath.Join(dir, "pre.json"))
	if req.Container == nil || req.Container.Task == nil || req.Container.Task.Task != tk.ID {
		t.Errorf("pre-launch request on the agent: %+v", req.Container)
	}
	c.e.ok("session", "kill", "--token-file", tok["/a"], id)
	c.waitTasks(id, api.TaskKilled, 1)
}
