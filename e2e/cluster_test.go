//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/client"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/pki"
)

// The cluster tests run a real master and real agents (caisson master and
// caisson agent processes, each agent with its own work dir, run root and
// cgroup parent), submit sessions through the CLI and the Go client, and
// check what runs: cgroup limits, granted ports and GPUs, logs, and what
// is left after a crash.

// Timeouts of the test master: short, so that a lost agent is lost within
// the test.
var masterFlags = []string{
	"--heartbeat-interval", "500ms", "--heartbeat-timeout", "2s", "--agent-lost-timeout", "4s",
	"--kill-grace", "2s", "--tick-interval", "200ms",
}

type cluster struct {
	t      testing.TB
	e      *env // the master's installation; its CLI calls the master
	dir    string
	url    string
	ca     string
	admin  string // the admin token's file
	master *daemon
	agents []*clusterAgent
}

// daemon is a caisson master or agent process the test started.
type daemon struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs cmd, returns the first line of its stdout that begins with
// prefix, and keeps reading the rest.
func startDaemon(t testing.TB, cmd *exec.Cmd, prefix string) (*daemon, string) {
	t.Helper()
	d := &daemon{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s:\n%s", strings.Join(cmd.Args, " "), d.stderr.String())
		}
	})
	if prefix == "" {
		go func() { _, _ = io.Copy(io.Discard, out) }()
		return d, ""
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			line := sc.Text()
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return d, line
		}
	}
	<-d.done
	t.Fatalf("%s ended without printing %q:\n%s", strings.Join(cmd.Args, " "), prefix, d.stderr.String())
	return nil, ""
}

// stop signals the process (and only it) and waits for its end.
func (d *daemon) stop(sig syscall.Signal) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

type clusterAgent struct {
	e         *env
	dir       string
	resources string
	d         *daemon
	// metricsURL is where the agent serves its Prometheus metrics.
	metricsURL string
}

// newCluster starts a master with an admin token and no agent.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	e := newEnv(t)
	c := &cluster{t: t, e: e, dir: filepath.Join(t.TempDir(), "master")}
	c.startMaster("127.0.0.1:0")
	c.ca = filepath.Join(c.dir, "pki", pki.CAFile)
	c.admin = filepath.Join(c.dir, "admin.token")
	e.extraEnv = append(e.extraEnv, "CAISSON_MASTER="+c.url, "CAISSON_TLS_CA="+c.ca, "CAISSON_TOKEN_FILE="+c.admin)
	return c
}

func (c *cluster) startMaster(listen string) {
	c.t.Helper()
	args := append([]string{"master", "--listen", listen, "--state-dir", c.dir}, masterFlags...)
	d, line := startDaemon(c.t, c.e.cmd(args...), "master: ")
	c.master, c.url = d, strings.TrimPrefix(line, "master: ")
}

// restartMaster kills the master with SIGKILL and starts it again on the
// same address and store.
func (c *cluster) restartMaster() {
	c.t.Helper()
	c.master.stop(syscall.SIGKILL)
	c.startMaster(strings.TrimPrefix(c.url, "https://"))
}

// addAgent starts an agent with resources (as --resources takes them) and
// an installation of its own, and waits until the master lists it.
func (c *cluster) addAgent(resources string, extraEnv ...string) *clusterAgent {
	c.t.Helper()
	e := newEnv(c.t)
	e.extraEnv = append(e.extraEnv, extraEnv...)
	a := &clusterAgent{e: e, dir: filepath.Join(c.t.TempDir(), "agent"), resources: resources}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	var tok api.Token
	if err := json.Unmarshal([]byte(c.e.ok("token", "create", "--role", "agent", "--name", "agent", "--format", "json")), &tok); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "token"), []byte(tok.Secret), 0o600); err != nil {
		c.t.Fatal(err)
	}
	// A certificate of its own, in the agent's default place.
	c.e.ok("certs", "--state-dir", c.dir, "--host", "127.0.0.1", "--out", filepath.Join(a.dir, "pki"))
	before := len(c.agentList())
	c.startAgent(a)
	c.agents = append(c.agents, a)
	c.eventually("the agent registers", func() bool { return len(c.agentList()) == before+1 })
	return a
}

func (c *cluster) startAgent(a *clusterAgent) {
	c.t.Helper()
	args := []string{"agent", "--master", c.url, "--state-dir", a.dir, "--listen", "127.0.0.1:0",
		"--resources", a.resources, "--kill-grace", "2s", "--metrics-listen", "127.0.0.1:0"}
	var line string
	a.d, line = startDaemon(c.t, a.e.cmd(args...), "metrics: ")
	a.metricsURL = strings.TrimPrefix(line, "metrics: ")
}

// metric is the value of one series of the agent's metrics, as its line
// in the text format names it ("caisson_agent_tasks{state=\"running\"}");
// "" when there is none.
func (a *clusterAgent) metric(t testing.TB, series string) string {
	t.Helper()
	resp, err := http.Get(a.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", a.metricsURL, resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// id is the agent's ID, as it keeps it.
func (a *clusterAgent) id(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.dir, "agent-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (c *cluster) agentList() []api.Agent {
	c.t.Helper()
	var out []api.Agent
	if err := json.Unmarshal([]byte(c.e.ok("agents", "--format", "json")), &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// eventually polls cond until it holds, for at most a minute: the cluster
// acts asynchronously (agents report what their containers do), and a
// test waits for the state it needs, never for a time.
func (c *cluster) eventually(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) tasks(session string) []api.Task {
	c.t.Helper()
	var out []api.Task
	if err := json.Unmarshal([]byte(c.e.ok("task", "ls", "--session", session, "--format", "json")), &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// waitTasks waits until the session has n tasks in state.
func (c *cluster) waitTasks(session, state string, n int) []api.Task {
	c.t.Helper()
	var got []api.Task
	c.eventually(fmt.Sprintf("%d tasks of %s are %s", n, session, state), func() bool {
		got = got[:0]
		for _, tk := range c.tasks(session) {
			if tk.State == state {
				got = append(got, tk)
			}
		}
		return len(got) == n
	})
	return got
}

// submit writes a session file and submits it with token (a file), and
// returns the session's ID.
func (c *cluster) submit(token, spec string) string {
	c.t.Helper()
	f := filepath.Join(c.t.TempDir(), "job.yaml")
	if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(c.e.ok("submit", "--token-file", token, f))
}

// tenant makes a consumer tree and returns a token file for each leaf.
func (c *cluster) tenants(tree string, leaves ...string) map[string]string {
	c.t.Helper()
	f := filepath.Join(c.t.TempDir(), "tree.yaml")
	if err := os.WriteFile(f, []byte(tree), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.e.ok("consumer", "apply", "-f", f)
	out := map[string]string{}
	for _, l := range leaves {
		var tok api.Token
		if err := json.Unmarshal([]byte(c.e.ok("token", "create", "--consumer", l, "--format", "json")), &tok); err != nil {
			c.t.Fatal(err)
		}
		p := filepath.Join(c.t.TempDir(), "tenant.token")
		if err := os.WriteFile(p, []byte(tok.Secret), 0o600); err != nil {
			c.t.Fatal(err)
		}
		out[l] = p
	}
	return out
}

// agentOf is the agent a task runs on.
func (c *cluster) agentOf(tk api.Task) *clusterAgent {
	c.t.Helper()
	for _, a := range c.agents {
		if a.id(c.t) == tk.Agent {
			return a
		}
	}
	c.t.Fatalf("task %s is on agent %s, which the test did not start", tk.ID, tk.Agent)
	return nil
}

func (c *cluster) client(tokenFile string) *client.Client {
	c.t.Helper()
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		c.t.Fatal(err)
	}
	tlsCfg, err := pki.Files{CA: c.ca}.ClientConfig()
	if err != nil {
		c.t.Fatal(err)
	}
	cl, err := client.New(client.Options{URL: c.url, Token: strings.TrimSpace(string(tok)), TLS: tlsCfg})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

const twoTenants = `
consumers:
  - name: a
    owned: {cpus: 1, memory: 512m}
    grace: 2s
  - name: b
    owned: {cpus: 1, memory: 512m}
    grace: 2s
`

// TestClusterSession: a tenant's session runs as real containers on two
// agents, each with the cgroup limits and the host port the scheduler
// granted; its output reaches caisson logs; another tenant can neither
// see nor act on it; killing it leaves nothing on the agents.
func TestClusterSession(t *testing.T) {
	c := newCluster(t)
	c.addAgent("cpus:1;mem:1g;ports:[31000-31009]")
	c.addAgent("cpus:1;mem:1g;ports:[32000-32009]")
	tok := c.tenants(twoTenants, "/a", "/b")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: web
policy: spread
groups:
  - name: srv
    count: 4
    resources: {cpus: 0.5, memory: 96m, ports: 1}
    rootfs: %s
    command: [sh, -c, 'echo "task $CAISSON_TASK_ID port $PORT0"; exec sleep 600']
`, c.e.rootfs))
	running := c.waitTasks(id, api.TaskRunning, 4)

	perAgent := map[string]int{}
	for _, tk := range running {
		a := c.agentOf(tk)
		perAgent[tk.Agent]++
		ct := a.e.inspect(tk.Container)
		if got := readCgroupFile(t, ct.CgroupPath, "memory", "memory.limit_in_bytes"); got != fmt.Sprint(96<<20) {
			t.Errorf("task %s: memory limit %s, want %d", tk.ID, got, 96<<20)
		}
		if got := readCgroupFile(t, ct.CgroupPath, "cpu", "cpu.cfs_quota_us"); got != "50000" {
			t.Errorf("task %s: CFS quota %s, want 50000", tk.ID, got)
		}
		if len(tk.Ports) != 1 {
			t.Fatalf("task %s: ports %v, want one", tk.ID, tk.Ports)
		}
		want := fmt.Sprintf("task %s port %d", tk.ID, tk.Ports[0])
		followUntil(t, c.e.cmd("logs", "-f", tk.ID), want)
	}
	// The agents' heartbeats bring each task's usage to the master: its
	// memory, within the limit, and its processes.
	c.eventually("every task shows its usage", func() bool {
		for _, tk := range c.tasks(id) {
			if u := tk.Usage; u == nil || u.MemoryUsageBytes == 0 || u.MemoryUsageBytes > 96<<20 || u.Pids == 0 {
				return false
			}
		}
		return true
	})
	// Each agent's metrics count its two running tasks.
	for _, a := range c.agents {
		if got := a.metric(t, `caisson_agent_tasks{state="running"}`); got != "2" {
			t.Errorf("agent %s: caisson_agent_tasks{state=\"running\"} = %q, want 2", a.id(t), got)
		}
	}
	// A CPU time, then the memory used, on each of the four rows.
	used := regexp.MustCompile(`(?m)^\S+\s+running\s.*\s[0-9.]+(ns|µs|ms|s|m[0-9.]*s)\s+[0-9.]+[KMG]?i?B\s`)
	if out := c.e.ok("task", "ls", "--session", id); len(used.FindAllString(out, -1)) != 4 {
		t.Errorf("task ls does not show the usage of the four tasks:\n%s", out)
	}

	// Two agents of one CPU each, tasks of half a CPU: two on each, never
	// more than an agent registered.
	for agentID, n := range perAgent {
		if n != 2 {
			t.Errorf("agent %s runs %d tasks, want 2 (perAgent %v)", agentID, n, perAgent)
		}
	}

	// The other tenant sees nothing of it and can act on nothing.
	other := c.client(tok["/b"])
	ctx := context.Background()
	if _, err := other.Session(ctx, id); !isNotFound(err) {
		t.Errorf("tenant b inspects tenant a's session: %v, want not found", err)
	}
	if err := other.KillSession(ctx, id); !isNotFound(err) {
		t.Errorf("tenant b kills tenant a's session: %v, want not found", err)
	}
	if err := other.Scale(ctx, id, api.ScaleRequest{Group: "srv", Count: 1}); !isNotFound(err) {
		t.Errorf("tenant b scales tenant a's session: %v, want not found", err)
	}
	if err := other.KillTask(ctx, running[0].ID); !isNotFound(err) {
		t.Errorf("tenant b kills tenant a's task: %v, want not found", err)
	}
	if ss, err := other.Sessions(ctx, true); err != nil || len(ss) != 0 {
		t.Errorf("tenant b lists %v, %v; want nothing", ss, err)
	}
	if r := c.e.caisson("session", "inspect", "--token-file", tok["/b"], id); r.code == 0 {
		t.Errorf("caisson session inspect with tenant b's token: %s", r)
	}
	if _, err := other.Agents(ctx); !isForbidden(err) {
		t.Errorf("a tenant lists agents: %v, want forbidden", err)
	}

	// Scale down to one: three are killed, one runs on.
	c.e.ok("session", "scale", "--token-file", tok["/a"], id, "srv", "1")
	c.waitTasks(id, api.TaskKilled, 3)
	c.waitTasks(id, api.TaskRunning, 1)

	c.e.ok("session", "kill", "--token-file", tok["/a"], id)
	c.waitTasks(id, api.TaskKilled, 4)
	for _, a := range c.agents {
		a.eventuallyEmpty(c)
	}
}

// eventuallyEmpty waits until the agent's installation holds no container
// and nothing a container leaves.
func (a *clusterAgent) eventuallyEmpty(c *cluster) {
	c.t.Helper()
	c.eventually("the agent removes its containers", func() bool {
		return strings.TrimSpace(a.e.ok("ps", "-aq")) == "" && len(a.e.leftovers()) == 0 ||
			len(a.e.leftovers()) == 1 && strings.HasPrefix(a.e.leftovers()[0], "process ") // the agent itself
	})
}

func isNotFound(err error) bool  { return err != nil && errors.Is(err, api.ErrNotFound) }
func isForbidden(err error) bool { return err != nil && errors.Is(err, api.ErrForbidden) }

// TestClusterAgentCrash: kill -9 of an agent leaves its containers
// running; the restarted agent takes them up again under the same ID, and
// nothing is launched again.
func TestClusterAgentCrash(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("cpus:2;mem:1g")
	tok := c.tenants(twoTenants, "/a")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: crash
groups:
  - name: g
    count: 2
    resources: {cpus: 0.5, memory: 64m}
    rootfs: %s
    command: [sleep, "600"]
`, c.e.rootfs))
	before := c.waitTasks(id, api.TaskRunning, 2)
	agentID := a.id(t)
	containers := strings.Fields(a.e.ok("ps", "-q"))

	a.d.stop(syscall.SIGKILL)
	if got := strings.Fields(a.e.ok("ps", "-q")); !cmpStrings(got, containers) {
		t.Fatalf("after kill -9 of the agent the containers are %v, want %v", got, containers)
	}
	c.startAgent(a)
	c.eventually("the agent registers again", func() bool {
		for _, ag := range c.agentList() {
			if ag.ID == agentID && ag.State == "connected" {
				return true
			}
		}
		return false
	})
	if got := a.id(t); got != agentID {
		t.Errorf("agent ID after restart %s, want %s", got, agentID)
	}
	after := c.waitTasks(id, api.TaskRunning, 2)
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Container != after[i].Container {
			t.Errorf("task %d before %s in %s, after %s in %s", i, before[i].ID, before[i].Container, after[i].ID, after[i].Container)
		}
	}
	if got := strings.Fields(a.e.ok("ps", "-aq")); !cmpStrings(got, containers) {
		t.Errorf("containers after the agent's restart %v, want %v (none relaunched)", got, containers)
	}
	if n := len(c.tasks(id)); n != 2 {
		t.Errorf("%d tasks after the restart, want 2", n)
	}
	c.e.ok("session", "kill", id)
	a.eventuallyEmpty(c)
}

// TestClusterMasterCrash: kill -9 of the master: the restarted master
// restores its state from the store, the agent reconnects, the tasks are
// reconciled and none is launched twice; the cluster takes new work.
func TestClusterMasterCrash(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("cpus:2;mem:1g")
	tok := c.tenants(twoTenants, "/a")
	spec := fmt.Sprintf(`
name: survive
groups:
  - name: g
    count: 2
    resources: {cpus: 0.5, memory: 64m}
    rootfs: %s
    command: [sleep, "600"]
`, c.e.rootfs)
	id := c.submit(tok["/a"], spec)
	before := c.waitTasks(id, api.TaskRunning, 2)
	containers := strings.Fields(a.e.ok("ps", "-aq"))

	c.restartMaster()
	c.eventually("the agent reconnects", func() bool {
		l := c.agentList()
		return len(l) == 1 && l[0].State == "connected"
	})
	after := c.waitTasks(id, api.TaskRunning, 2)
	for i := range before {
		if before[i].Container != after[i].Container {
			t.Errorf("task %s ran in %s, now in %s", before[i].ID, before[i].Container, after[i].Container)
		}
	}
	if got := strings.Fields(a.e.ok("ps", "-aq")); !cmpStrings(got, containers) {
		t.Errorf("containers after the master's restart %v, want %v", got, containers)
	}
	// New work after the restart.
	id2 := c.submit(tok["/a"], strings.Replace(spec, "survive", "after", 1))
	c.waitTasks(id2, api.TaskRunning, 2)
	c.e.ok("session", "kill", id)
	c.e.ok("session", "kill", id2)
	a.eventuallyEmpty(c)
}

// TestClusterLaunchFailure: a task whose launch fails on the agent (an
// image that does not exist, a network that does not exist) is a failed
// task with the reason, and leaves nothing on the agent.
func TestClusterLaunchFailure(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("cpus:2;mem:1g")
	tok := c.tenants(twoTenants, "/a")
	for name, container := range map[string]string{
		"image":         "image: oci-layout:/nonexistent/layout",
		"network":       fmt.Sprintf("rootfs: %s\n    networks: [no-such-network]", c.e.rootfs),
		"volume plugin": fmt.Sprintf("rootfs: %s\n    volumes: [{driver: caisson-e2e-no-such-plugin, name: x, target: /x}]", c.e.rootfs),
	} {
		id := c.submit(tok["/a"], fmt.Sprintf(`
name: %s
groups:
  - name: g
    count: 1
    resources: {cpus: 0.5, memory: 64m}
    %s
    command: [sleep, "600"]
`, name, container))
		c.eventually("the launch fails", func() bool {
			for _, tk := range c.tasks(id) {
				if tk.State == api.TaskFailed {
					if !strings.Contains(tk.Reason, "launch-failed") || tk.Message == "" {
						t.Errorf("%s: failed task %+v: want reason launch-failed and a message", name, tk)
					}
					return true
				}
			}
			return false
		})
		c.e.ok("session", "kill", id)
	}
	a.eventuallyEmpty(c)
}

// TestClusterNetworkAndVolume: a task on a CNI network with a published
// port and a Docker volume from a volume plugin: the page it writes into
// the volume is served on the agent's granted host port; once the session
// is killed, the port is closed, the volume released, and the agent keeps
// nothing of the task (container, namespace, veth, cgroup, mount).
func TestClusterNetworkAndVolume(t *testing.T) {
	c := newCluster(t)
	cnitest.RequirePlugins(t)
	a := c.addAgent("cpus:2;mem:1g;ports:[31100-31109]")
	a.e.createNetwork("tnet", 0, 24)
	t.Cleanup(func() { a.e.caisson("network", "rm", "tnet") })
	plugin := randName("caisson-e2e-")
	p := startVolPlugin(t, plugin, filepath.Join(t.TempDir(), "plugin"))
	tok := c.tenants(twoTenants, "/a")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: web
groups:
  - name: srv
    count: 1
    resources: {cpus: 0.5, memory: 64m, ports: 1}
    rootfs: %s
    networks: [tnet]
    ports: [80]
    volumes:
      - {driver: %s, name: site, target: /site, options: {type: tmpfs}}
    command: [sh, -c, 'echo "hello from $CAISSON_TASK_ID" > /site/index.html && httpd -p 80 -h /site && echo ready && exec sleep 600']
`, c.e.rootfs, plugin))
	tk := c.waitTasks(id, api.TaskRunning, 1)[0]
	followUntil(t, c.e.cmd("logs", "-f", tk.ID), "ready")
	if len(tk.Ports) != 1 || tk.Ports[0] < 31100 || tk.Ports[0] > 31109 {
		t.Fatalf("task ports %v, want one of the agent's", tk.Ports)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", tk.Ports[0])
	if body, err := cnitest.HTTPGet(url); err != nil || body != "hello from "+tk.ID+"\n" {
		t.Errorf("GET %s = %q, %v; want the page the task wrote into its volume", url, body, err)
	}
	ct := a.e.inspect(tk.Container)
	if ip := containerIP(t, ct, "tnet"); !strings.HasPrefix(ip, a.e.subnet(0)) {
		t.Errorf("task address %s is not on tnet's subnet %s0/24", ip, a.e.subnet(0))
	}
	if !p.mounted("site") {
		t.Error("the plugin does not have the task's volume mounted")
	}

	c.e.ok("session", "kill", "--token-file", tok["/a"], id)
	c.waitTasks(id, api.TaskKilled, 1)
	a.eventuallyEmpty(c)
	if left := a.e.networkLeaks(); len(left) > 1 || len(left) == 1 && !strings.HasPrefix(left[0], "process ") {
		t.Errorf("the agent left:\n%s", strings.Join(left, "\n"))
	}
	if _, err := cnitest.HTTPGet(url); err == nil {
		t.Error("the published port still answers after the session was killed")
	}
	if p.mounted("site") {
		t.Error("the task's volume is still mounted after the session was killed")
	}
}

// TestClusterGPU: a session on an agent of a simulated DGX A100 gets the
// two GPUs the scheduler chose, and only them.
func TestClusterGPU(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("cpus:2;mem:1g", "CAISSON_GPU_BACKEND=mock:dgxa100")
	tok := c.tenants(`
consumers:
  - name: ml
    owned: {cpus: 2, memory: 1g, gpus: 8}
`, "/ml")
	var reg []api.Agent
	if err := json.Unmarshal([]byte(c.e.ok("agents", "--format", "json")), &reg); err != nil || len(reg) != 1 || len(reg[0].Resources.GPUs) != 8 {
		t.Fatalf("agents: %v, %+v", err, reg)
	}
	id := c.submit(tok["/ml"], fmt.Sprintf(`
name: train
groups:
  - name: w
    count: 1
    resources: {cpus: 0.5, memory: 64m, gpus: 2}
    same_island: true
    rootfs: %s
    command: [sh, -c, %q]
`, c.e.rootfs, gpuProbe+"echo probe-done; sleep 600"))
	tk := c.waitTasks(id, api.TaskRunning, 1)[0]
	if len(tk.GPUs) != 2 {
		t.Fatalf("task GPUs %v, want 2", tk.GPUs)
	}
	followUntil(t, c.e.cmd("logs", "-f", tk.ID), "probe-done")
	out := c.e.ok("logs", tk.ID)
	l := a.e.gpus()
	var granted []int
	for i, d := range l.Devices {
		if slices.Contains(tk.GPUs, d.UUID) {
			granted = append(granted, i)
		}
	}
	if len(granted) != 2 {
		t.Fatalf("granted UUIDs %v are not the agent's GPUs", tk.GPUs)
	}
	got := probeResult(t, strings.TrimSuffix(strings.TrimSpace(out), "probe-done"))
	if diff := cmp.Diff(wantProbe(l, granted...), got); diff != "" {
		t.Errorf("the task's GPUs (-want +got):\n%s", diff)
	}
	c.e.ok("session", "kill", id)
	a.eventuallyEmpty(c)
}

func cmpStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestClusterAgentLost: an agent gone past the lost-agent timeout has its
// tasks reported lost and placed again on another agent; when it comes
// back, the containers of the tasks already replaced are killed.
func TestClusterAgentLost(t *testing.T) {
	c := newCluster(t)
	c.addAgent("cpus:1;mem:1g")
	c.addAgent("cpus:1;mem:1g")
	tok := c.tenants(twoTenants, "/a")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: lost
groups:
  - name: g
    count: 1
    resources: {cpus: 0.5, memory: 64m}
    rootfs: %s
    command: [sleep, "600"]
`, c.e.rootfs))
	first := c.waitTasks(id, api.TaskRunning, 1)[0]
	gone := c.agentOf(first)
	gone.d.stop(syscall.SIGKILL)
	c.waitTasks(id, api.TaskLost, 1)
	second := c.waitTasks(id, api.TaskRunning, 1)[0]
	if second.Agent == first.Agent || second.ID == first.ID {
		t.Fatalf("the lost task %s on %s was replaced by %s on %s", first.ID, first.Agent, second.ID, second.Agent)
	}
	// The lost agent's container still runs until the agent returns.
	if got := strings.Fields(gone.e.ok("ps", "-q")); len(got) != 1 {
		t.Fatalf("the lost agent's containers: %v", got)
	}
	c.startAgent(gone)
	gone.eventuallyEmpty(c)
	if tk := c.waitTasks(id, api.TaskRunning, 1)[0]; tk.ID != second.ID {
		t.Errorf("running task %s, want the replacement %s", tk.ID, second.ID)
	}
	c.e.ok("session", "kill", id)
	for _, a := range c.agents {
		a.eventuallyEmpty(c)
	}
}

// TestClusterReclaim: tenant b borrows tenant a's idle share; when a's
// demand returns, b's borrowed tasks get their notice and are killed
// after the grace period, and a's tasks run.
func TestClusterReclaim(t *testing.T) {
	c := newCluster(t)
	c.addAgent("cpus:2;mem:1g")
	tok := c.tenants(twoTenants, "/a", "/b")
	job := func(name string, n int) string {
		return fmt.Sprintf(`
name: %s
groups:
  - name: g
    count: %d
    resources: {cpus: 0.5, memory: 64m}
    rootfs: %s
    command: [sleep, "600"]
`, name, n, c.e.rootfs)
	}
	b := c.submit(tok["/b"], job("borrower", 4))
	borrowed := 0
	for _, tk := range c.waitTasks(b, api.TaskRunning, 4) {
		if tk.Revocable {
			borrowed++
		}
	}
	if borrowed != 2 {
		t.Errorf("%d of b's 4 tasks run on borrowed resources, want 2", borrowed)
	}
	a := c.submit(tok["/a"], job("owner", 2))
	c.waitTasks(a, api.TaskRunning, 2)
	killed := c.waitTasks(b, api.TaskKilled, 2)
	for _, tk := range killed {
		if !tk.Revocable || !strings.Contains(tk.Reason, "reclaim") {
			t.Errorf("killed task %s: revocable %v, reason %q; want a reclaimed borrowed task", tk.ID, tk.Revocable, tk.Reason)
		}
	}
	c.waitTasks(b, api.TaskRunning, 2)
	c.e.ok("session", "kill", a)
	c.e.ok("session", "kill", b)
	c.agents[0].eventuallyEmpty(c)
}

// TestClusterUp: caisson up runs a master and an agent in one process,
// with the TLS material and tokens it makes; killed with SIGKILL and
// started again, it restores the master and the agent takes up the
// containers, which never stopped.
func TestClusterUp(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.extraEnv = append(e.extraEnv, "CAISSON_AGENT_STATE_DIR="+filepath.Join(dir, "agent"), "CAISSON_AGENT_LISTEN=127.0.0.1:0")
	up := func(listen string) (*daemon, string) {
		args := append([]string{"up", "--listen", listen, "--state-dir", filepath.Join(dir, "master")}, masterFlags...)
		d, line := startDaemon(t, e.cmd(args...), "master: ")
		return d, strings.TrimPrefix(line, "master: ")
	}
	d, url := up("127.0.0.1:0")
	c := &cluster{t: t, e: e, dir: filepath.Join(dir, "master"), url: url, master: d}
	c.ca = filepath.Join(c.dir, "pki", pki.CAFile)
	c.admin = filepath.Join(c.dir, "admin.token")
	e.extraEnv = append(e.extraEnv, "CAISSON_MASTER="+url, "CAISSON_TLS_CA="+c.ca, "CAISSON_TOKEN_FILE="+c.admin)
	for _, f := range []string{c.admin, filepath.Join(dir, "agent", "token"), filepath.Join(c.dir, "pki", pki.CAKeyFile)} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want a file of mode 0600", filepath.Base(f), err)
		}
	}
	c.eventually("the agent registers", func() bool { return len(c.agentList()) == 1 })
	tok := c.tenants(twoTenants, "/a")
	id := c.submit(tok["/a"], fmt.Sprintf(`
name: up
groups:
  - name: g
    count: 2
    resources: {cpus: 0.1, memory: 32m}
    rootfs: %s
    command: [sleep, "600"]
`, e.rootfs))
	before := c.waitTasks(id, api.TaskRunning, 2)
	containers := strings.Fields(e.ok("ps", "-q"))

	d.stop(syscall.SIGKILL)
	if got := strings.Fields(e.ok("ps", "-q")); !cmpStrings(got, containers) {
		t.Fatalf("after kill -9 of caisson up the containers are %v, want %v", got, containers)
	}
	d2, url2 := up(strings.TrimPrefix(url, "https://"))
	c.master = d2
	if url2 != url {
		t.Fatalf("caisson up listens at %s, was %s", url2, url)
	}
	c.eventually("the agent registers again", func() bool {
		l := c.agentList()
		return len(l) == 1 && l[0].State == "connected"
	})
	after := c.waitTasks(id, api.TaskRunning, 2)
	for i := range before {
		if before[i].Container != after[i].Container {
			t.Errorf("task %s ran in %s, now in %s", before[i].ID, before[i].Container, after[i].Container)
		}
	}
	c.e.ok("session", "kill", id)
	c.waitTasks(id, api.TaskKilled, 2)
	c.eventually("the containers are removed", func() bool { return strings.TrimSpace(e.ok("ps", "-aq")) == "" })
	d2.stop(syscall.SIGTERM)
}
