//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/internal/mountinfo"
)

const volImage = "caisson-e2e/busybox:1"

// volPlugin is a `caisson volume-plugin` process of the test's own.
type volPlugin struct {
	t      testing.TB
	name   string
	root   string
	args   []string // more flags of volume-plugin
	cmd    *exec.Cmd
	exited chan error
}

// startVolPlugin runs the plugin (a legacy plugin: its socket in
// /run/docker/plugins, named uniquely) and returns once it serves.
func startVolPlugin(t testing.TB, name, root string, args ...string) *volPlugin {
	t.Helper()
	p := &volPlugin{t: t, name: name, root: root, args: args}
	p.start()
	t.Cleanup(func() {
		p.stop()
		unmountUnder(root)
	})
	return p
}

func (p *volPlugin) sock() string { return filepath.Join("/run/docker/plugins", p.name+".sock") }

func (p *volPlugin) start() {
	p.t.Helper()
	cmd := exec.Command(caissonBin, append([]string{"--log-level", "info", "volume-plugin", "--name", p.name, "--root", p.root}, p.args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	p.exited = make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), `msg=serving`) {
				ready <- ""
				break
			}
		}
		if len(seen) > 0 && !strings.Contains(seen[len(seen)-1], "msg=serving") {
			ready <- strings.Join(seen, "\n")
		}
		_, _ = io.Copy(os.Stderr, stderr)
		p.exited <- cmd.Wait()
	}()
	if out := <-ready; out != "" {
		p.t.Fatalf("volume plugin did not start:\n%s", out)
	}
}

// stop sends SIGTERM and waits: the plugin must remove its socket.
func (p *volPlugin) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	p.cmd = nil
	if _, err := os.Lstat(p.sock()); !os.IsNotExist(err) {
		p.t.Errorf("plugin socket left after SIGTERM: %v", err)
		_ = os.Remove(p.sock())
	}
}

// kill9 kills the plugin as a crash would: its socket stays behind.
func (p *volPlugin) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// refs reads the plugin's reference counts of a volume from its state file.
func (p *volPlugin) refs(name string) map[string]int {
	p.t.Helper()
	data, err := os.ReadFile(filepath.Join(p.root, "state.json"))
	if err != nil {
		p.t.Fatal(err)
	}
	var st struct {
		Volumes map[string]struct {
			Mounts map[string]int `json:"mounts"`
		} `json:"volumes"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		p.t.Fatal(err)
	}
	v, ok := st.Volumes[name]
	if !ok {
		p.t.Fatalf("no volume %s in the plugin's state", name)
	}
	if v.Mounts == nil {
		return map[string]int{}
	}
	return v.Mounts
}

// mounted reports whether a loop or tmpfs volume's backing mount is there.
func (p *volPlugin) mounted(name string) bool {
	ms, err := mountinfo.Read(0)
	if err != nil {
		p.t.Fatal(err)
	}
	return mountinfo.IsMountPoint(ms, filepath.Join(p.root, "volumes", name, "mnt"))
}

// checkReleased fails the test unless a volume is unmounted with no count
// left, when, in words, says at what point.
func (p *volPlugin) checkReleased(t *testing.T, name, when string) {
	t.Helper()
	if p.mounted(name) || len(p.refs(name)) != 0 {
		t.Errorf("%s: volume %s mounted %v, refs %v", when, name, p.mounted(name), p.refs(name))
	}
}

// call sends body to the plugin's endpoint as dockerd would, and returns the
// status and the decoded answer.
func (p *volPlugin) call(method string, body io.Reader) (int, map[string]any) {
	p.t.Helper()
	c := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.sock())
		},
	}}
	resp, err := c.Post("http://plugin/"+method, "application/json", body)
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	var ans map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans); err != nil {
		p.t.Fatalf("%s: answer: %v", method, err)
	}
	return resp.StatusCode, ans
}

func oneID(t *testing.T, refs map[string]int) string {
	t.Helper()
	if len(refs) != 1 {
		t.Fatalf("want one mount ID, have %v", refs)
	}
	for id := range refs {
		return id
	}
	return ""
}

func randName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestDockerVolumes runs the driver under a real dockerd (a private one),
// through the sequences of research volumes-cni.md §9, and shares volumes
// between Docker and Caisson containers.
func TestDockerVolumes(t *testing.T) {
	e := newEnv(t)
	d, err := startDockerd(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.importImage(e.rootfs, volImage); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "CAISSON_DOCKER_HOST="+d.Host())
	name := randName("caisson-e2e-")
	p := startVolPlugin(t, name, filepath.Join(t.TempDir(), "plugin"))
	// Every container of the daemon goes before the daemon does.
	t.Cleanup(func() {
		if ids := strings.Fields(d.ok("ps", "-aq")); len(ids) > 0 {
			d.ok(append([]string{"rm", "-f"}, ids...)...)
		}
	})
	run := func(args ...string) string {
		t.Helper()
		return d.ok(append([]string{"run", "--rm", "--network", "none"}, args...)...)
	}

	t.Run("SizeAndOwnership", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "-o", "type=loop", "-o", "size=8m", "-o", "uid=1000", "-o", "gid=1000", "sized")
		out := run("-v", "sized:/d", volImage, "sh", "-c",
			"stat -c %u:%g /d; dd if=/dev/zero of=/d/big bs=1M count=12 2>&1; echo rc=$?")
		if !strings.HasPrefix(out, "1000:1000\n") {
			t.Errorf("owner of the volume root: %q", out)
		}
		if !strings.Contains(out, "No space left on device") || strings.HasSuffix(out, "rc=0") {
			t.Errorf("writing 12MiB into an 8MiB volume did not fail with ENOSPC:\n%s", out)
		}
		var info []struct {
			Driver string
			Status map[string]any
		}
		if err := json.Unmarshal([]byte(d.ok("volume", "inspect", "sized")), &info); err != nil || len(info) != 1 {
			t.Fatalf("volume inspect: %v", err)
		}
		if info[0].Driver != name || info[0].Status["type"] != "loop" || info[0].Status["size"] != "8MiB" {
			t.Errorf("volume inspect: %+v", info[0])
		}
		if p.mounted("sized") {
			t.Error("volume still mounted after its containers ended")
		}
		d.ok("volume", "rm", "sized")
	})

	t.Run("SharedBetweenContainers", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "shared")
		run("-v", "shared:/d", volImage, "sh", "-c", "echo hello > /d/f")
		if got := run("-v", "shared:/d", volImage, "cat", "/d/f"); got != "hello" {
			t.Errorf("second container read %q", got)
		}
		d.ok("volume", "rm", "shared")
		if _, err := os.Stat(filepath.Join(p.root, "volumes", "shared")); !os.IsNotExist(err) {
			t.Errorf("data left after volume rm: %v", err)
		}
	})

	t.Run("DockerCp", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "-o", "type=tmpfs", "cpvol")
		d.ok("run", "-d", "--name", "cp1", "--network", "none", "-v", "cpvol:/d", volImage, "sleep", "1000")
		id := oneID(t, p.refs("cpvol"))
		src := filepath.Join(t.TempDir(), "copied")
		if err := os.WriteFile(src, []byte("via docker cp"), 0o644); err != nil {
			t.Fatal(err)
		}
		// docker cp mounts and unmounts the running container's ID again.
		d.ok("cp", src, "cp1:/d/copied")
		if diff := cmp.Diff(map[string]int{id: 1}, p.refs("cpvol")); diff != "" {
			t.Errorf("refs after docker cp (-want +got):\n%s", diff)
		}
		if !p.mounted("cpvol") {
			t.Fatal("docker cp's Unmount unmounted a volume in use")
		}
		if got := d.ok("exec", "cp1", "cat", "/d/copied"); got != "via docker cp" {
			t.Errorf("file copied in: %q", got)
		}
		if _, err := d.run("volume", "rm", "cpvol"); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("volume rm while in use: %v", err)
		}
		d.ok("rm", "-f", "cp1")
		p.checkReleased(t, "cpvol", "after the container")
		d.ok("volume", "rm", "cpvol")
	})

	t.Run("DaemonKilled", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "-o", "type=loop", "-o", "size=4m", "crashvol")
		d.ok("run", "-d", "--name", "crash1", "--network", "none", "-v", "crashvol:/d", volImage, "sleep", "1000")
		id := oneID(t, p.refs("crashvol"))
		// No Unmount ever comes for the container the crash took down.
		d.kill9()
		d.restart()
		if st := d.ok("inspect", "-f", "{{.State.Running}}", "crash1"); st != "false" {
			t.Fatalf("container after the daemon's crash: running=%s", st)
		}
		// The same persisted ID is mounted again: counted once, not twice.
		d.ok("start", "crash1")
		if diff := cmp.Diff(map[string]int{id: 1}, p.refs("crashvol")); diff != "" {
			t.Errorf("refs after docker start (-want +got):\n%s", diff)
		}
		d.ok("rm", "-f", "crash1")
		d.ok("volume", "rm", "crashvol")
		if p.mounted("crashvol") {
			t.Error("volume still mounted after volume rm")
		}
	})

	t.Run("PluginRestart", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "-o", "type=loop", "-o", "size=4m", "prvol")
		d.ok("run", "-d", "--name", "pr1", "--network", "none", "-v", "prvol:/d", volImage, "sh", "-c", "echo before > /d/f; exec sleep 1000")
		before := p.refs("prvol")
		p.stop()
		p.start()
		if diff := cmp.Diff(before, p.refs("prvol")); diff != "" {
			t.Errorf("refs across a plugin restart (-before +after):\n%s", diff)
		}
		if !p.mounted("prvol") {
			t.Error("volume unmounted by a plugin restart")
		}
		if ls := d.ok("volume", "ls", "-q", "--filter", "driver="+name); !strings.Contains(ls, "prvol") {
			t.Errorf("volume ls after the restart: %q", ls)
		}
		// The next Unmount pairs with the Mount made before the restart.
		d.ok("rm", "-f", "pr1")
		p.checkReleased(t, "prvol", "after the container")
		d.ok("volume", "rm", "prvol")
	})

	t.Run("DockerAndCaisson", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "-o", "type=loop", "-o", "size=4m", "both")
		d.ok("run", "-d", "--name", "dk", "--network", "none", "-v", "both:/d", volImage, "sh", "-c", "echo from-docker > /d/f; exec sleep 1000")
		d.ok("exec", "dk", "cat", "/d/f") // written before we go on
		cid := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "-v", name+"/both:/data",
			"sh", "-c", "cat /data/f; echo from-caisson > /data/g; echo ready; exec sleep 1000"))
		e.waitForLine(cid, "ready")
		if logs := e.ok("logs", cid); !strings.HasPrefix(logs, "from-docker\n") {
			t.Errorf("caisson container read %q", logs)
		}
		if got := d.ok("exec", "dk", "cat", "/d/g"); got != "from-caisson" {
			t.Errorf("docker container read %q", got)
		}
		if refs := p.refs("both"); len(refs) != 2 {
			t.Errorf("refs with a docker and a caisson container: %v", refs)
		}
		d.ok("rm", "-f", "dk")
		if !p.mounted("both") {
			t.Fatal("volume unmounted while the caisson container uses it")
		}
		if _, err := d.run("volume", "rm", "both"); err == nil {
			t.Error("volume rm succeeded while a caisson container uses it")
		}
		e.ok("rm", "-f", cid)
		p.checkReleased(t, "both", "after both")
		d.ok("volume", "rm", "both")
	})

	t.Run("CaissonCreates", func(t *testing.T) {
		// --mount creates a missing volume with its volume-opts, read-only
		// mounts refuse writes.
		out := e.ok("run", "--rm", "--rootfs", e.rootfs,
			"--mount", "type=volume,driver="+name+",src=made,dst=/m,volume-opt=uid=1000,volume-opt=mode=0700",
			"-v", name+"/made:/ro:ro", "sh", "-c", "stat -c %u:%a /m; echo x > /ro/x 2>/dev/null || echo ro-refused")
		if out != "1000:700\nro-refused\n" {
			t.Errorf("caisson run with a created volume: %q", out)
		}
		if ls := d.ok("volume", "ls", "-q"); !strings.Contains(ls, "made") {
			t.Errorf("docker does not list the volume caisson created: %q", ls)
		}
		d.ok("volume", "rm", "made")
	})

	t.Run("CaissonCrash", func(t *testing.T) {
		d.ok("volume", "create", "-d", name, "-o", "type=tmpfs", "crashc")
		for _, step := range []string{"volume:recorded", "volume:mounted"} {
			crash := *e
			crash.extraEnv = append(append([]string(nil), e.extraEnv...), "CAISSON_TEST_CRASH_AT="+step)
			if r := crash.caisson("run", "-d", "--rootfs", e.rootfs, "-v", name+"/crashc:/d", "sleep", "1000"); r.code != 137 {
				t.Fatalf("the launch crashed at %s: %s", step, r)
			}
			e.ok("ps", "-a") // recovery
			p.checkReleased(t, "crashc", "after a crash at "+step+" and recovery")
			if recs, _ := filepath.Glob(filepath.Join(e.root, "volumes", "*.json")); len(recs) != 0 {
				t.Errorf("after a crash at %s and recovery: records %v", step, recs)
			}
		}
		d.ok("volume", "rm", "crashc")
	})

	t.Run("StrayUnmount", func(t *testing.T) {
		// An Unmount of the mount ID dockerd gave out, while the container
		// runs: the plugin's count is gone, not the container's use, and
		// Remove must see it, for each backend.
		for i, opts := range [][]string{{"-o", "type=loop", "-o", "size=8m"}, {"-o", "type=tmpfs"}, {}} {
			vol := fmt.Sprintf("stray%d", i)
			ctr := "stray-c" + vol
			d.ok(append(append([]string{"volume", "create", "-d", name}, opts...), vol)...)
			d.ok("run", "-d", "--name", ctr, "--network", "none", "-v", vol+":/d", volImage, "sh", "-c", "echo before > /d/f; exec sleep 1000")
			d.ok("exec", ctr, "cat", "/d/f")
			id := oneID(t, p.refs(vol))
			unmount, _ := json.Marshal(map[string]string{"Name": vol, "ID": id})
			if status, ans := p.call("VolumeDriver.Unmount", strings.NewReader(string(unmount))); status != http.StatusOK {
				t.Fatalf("stray Unmount: %d %v", status, ans)
			}
			status, ans := p.call("VolumeDriver.Remove", strings.NewReader(`{"Name":"`+vol+`"}`))
			if msg, _ := ans["Err"].(string); status == http.StatusOK || !strings.Contains(msg, "in use") {
				t.Errorf("%v: Remove after a stray Unmount: %d %v, want refused as in use", opts, status, ans)
			}
			d.ok("exec", ctr, "sh", "-c", "echo after >> /d/f")
			if got := d.ok("exec", ctr, "cat", "/d/f"); got != "before\nafter" {
				t.Errorf("%v: the container's data after the refused Remove: %q", opts, got)
			}
			d.ok("rm", "-f", ctr)
			d.ok("volume", "rm", vol)
		}
	})

	t.Run("HostileRequests", func(t *testing.T) {
		for _, tc := range []struct {
			method string
			body   io.Reader
		}{
			{"VolumeDriver.Create", io.MultiReader(strings.NewReader(`{"Name":"big","Opts":{"x":"`), io.LimitReader(zeros{}, 400<<20))},
			{"VolumeDriver.Mount", strings.NewReader(`{"Name":"v","ID":"` + strings.Repeat("i", 50<<10) + `"}`)},
			{"VolumeDriver.Create", strings.NewReader(`{"Name":"trail"} trailing`)},
			{"VolumeDriver.Create", strings.NewReader(`{"Name":"` + strings.Repeat("n", 256) + `"}`)},
		} {
			status, ans := p.call(tc.method, tc.body)
			if msg, _ := ans["Err"].(string); status == http.StatusOK || msg == "" {
				t.Errorf("%s with a hostile body: %d %v, want a plugin error", tc.method, status, ans)
			}
		}
		if ls := d.ok("volume", "ls", "-q"); ls != "" {
			t.Errorf("volumes after hostile requests: %q", ls)
		}
		if fi, err := os.Stat(filepath.Join(p.root, "state.json")); err != nil || fi.Size() > 64<<10 {
			t.Errorf("state file after hostile requests: %v, %v", fi, err)
		}
	})

	t.Run("LongName", func(t *testing.T) {
		for _, n := range []int{236, 255} {
			vol := "l" + strings.Repeat("x", n-1)
			d.ok("volume", "create", "-d", name, "-o", "type=loop", "-o", "size=4m", vol)
			run("-v", vol+":/d", volImage, "sh", "-c", "echo x > /d/f")
			d.ok("volume", "rm", vol)
			if entries, _ := os.ReadDir(filepath.Join(p.root, "trash")); len(entries) != 0 {
				t.Errorf("trash after removing a %d-byte name: %v", n, entries)
			}
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct{ opts []string }{
			{[]string{"-o", "size=lots"}},
			{[]string{"-o", "type=bind", "-o", "path=/does/not/exist"}},
			{[]string{"-o", "type=bind", "-o", "path=" + p.root}},
			{[]string{"-o", "type=bind", "-o", "path=/etc"}}, // no --bind-allow
			{[]string{"-o", "colour=blue"}},
			{[]string{"-o", "size=1g"}}, // a dir volume, and no XFS quota here
		} {
			_, err := d.run(append(append([]string{"volume", "create", "-d", name}, tc.opts...), "bad")...)
			if err == nil || !strings.Contains(err.Error(), "VolumeDriver.Create: ") {
				t.Errorf("volume create %v: %v", tc.opts, err)
			}
		}
		if ls := d.ok("volume", "ls", "-q"); ls != "" {
			t.Errorf("volumes after bad input: %q", ls)
		}
		// The plugin keeps serving.
		d.ok("volume", "create", "-d", name, "good")
		d.ok("volume", "rm", "good")
		// A crashed plugin: a clear error, nothing left behind.
		p.kill9()
		r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "-v", name+"/x:/x", "true")
		if r.code != 125 || !strings.Contains(r.stderr, "unavailable") {
			t.Errorf("run with a crashed plugin: %s", r)
		}
		if recs, _ := filepath.Glob(filepath.Join(e.root, "volumes", "*.json")); len(recs) != 0 {
			t.Errorf("volume records left: %v", recs)
		}
		p.start()
	})

	t.Run("BindAllow", func(t *testing.T) {
		allowed := t.TempDir()
		bname := randName("caisson-e2e-bind-")
		bp := startVolPlugin(t, bname, filepath.Join(t.TempDir(), "plugin"), "--bind-allow", allowed)
		host := filepath.Join(allowed, "shared")
		if err := os.Mkdir(host, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/etc", bp.root, filepath.Dir(allowed)} {
			if _, err := d.run("volume", "create", "-d", bname, "-o", "type=bind", "-o", "path="+path, "bad"); err == nil {
				t.Errorf("bind volume of %s created", path)
			}
		}
		d.ok("volume", "create", "-d", bname, "-o", "type=bind", "-o", "path="+host, "hostdir")
		run("-v", "hostdir:/d", volImage, "sh", "-c", "echo from-container > /d/f")
		if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "from-container\n" {
			t.Errorf("bind volume's host directory: %q, %v", b, err)
		}
		// The path swapped for a symlink to the plugin's root after Create.
		if err := os.Rename(host, host+".old"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(bp.root, host); err != nil {
			t.Fatal(err)
		}
		if out, err := d.run("run", "--rm", "--network", "none", "-v", "hostdir:/d", volImage, "ls", "/d"); err == nil {
			t.Errorf("a container mounted the swapped bind volume: %q", out)
		}
		d.ok("volume", "rm", "hostdir")
		if _, err := os.Stat(filepath.Join(host+".old", "f")); err != nil {
			t.Errorf("bind volume's data after volume rm: %v", err)
		}
	})

	t.Run("ManagedPlugin", func(t *testing.T) {
		bundle := filepath.Join(t.TempDir(), "bundle")
		if out, err := exec.Command("../scripts/plugin-bundle.sh", bundle, caissonBin).CombinedOutput(); err != nil {
			t.Fatalf("plugin-bundle.sh: %v\n%s", err, out)
		}
		mname := "caisson-e2e/vol:test"
		d.ok("plugin", "create", mname, bundle)
		t.Cleanup(func() {
			_, _ = d.run("plugin", "disable", "-f", mname)
			_, _ = d.run("plugin", "rm", "-f", mname)
		})
		d.ok("plugin", "enable", mname)
		d.ok("volume", "create", "-d", mname, "-o", "uid=1000", "mv")
		run("-v", "mv:/d", volImage, "sh", "-c", "stat -c %u /d > /d/owner")
		pid := d.ok("plugin", "inspect", "-f", "{{.Id}}", mname)
		onHost := filepath.Join(d.DataRoot(), "plugins", pid, "propagated-mount", "volumes", "mv", "data", "owner")
		if b, err := os.ReadFile(onHost); err != nil || string(b) != "1000\n" {
			t.Errorf("data of the managed plugin's volume on the host: %q, %v", b, err)
		}
		// Caisson finds the managed plugin through dockerd's API.
		if out := e.ok("run", "--rm", "--rootfs", e.rootfs, "-v", mname+"/mv:/d", "cat", "/d/owner"); out != "1000\n" {
			t.Errorf("caisson container read %q from the managed plugin's volume", out)
		}
		d.ok("volume", "rm", "mv")
	})
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}
