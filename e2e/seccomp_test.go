//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/oci"
)

// The calls Docker's default profile refuses that the review found allowed:
// the kernel keyrings (a container read and wrote the host root's user
// keyring), a user namespace and a mount in it, perf events, and a
// personality that turns address space randomisation off.
var seccompDenied = []string{"add_key", "keyctl", "unshare", "userns-mount", "perf_event_open", "personality"}

// seccompProbe builds the probe (testdata/seccompprobe), a static binary
// that makes the calls it is named and prints their errno, and returns its
// path in a temporary directory of t. Where the tests run without a Go
// toolchain (the cgroup v2 VM), CAISSON_SECCOMP_PROBE names a prebuilt one.
func seccompProbe(t *testing.T) string {
	t.Helper()
	if prebuilt := os.Getenv("CAISSON_SECCOMP_PROBE"); prebuilt != "" {
		return prebuilt
	}
	bin := filepath.Join(t.TempDir(), "seccomp-probe")
	build := exec.Command("go", "build", "-o", bin, "./testdata/seccompprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the seccomp probe: %v\n%s", err, out)
	}
	return bin
}

// seccompEnv is an env whose busybox root filesystem has the probe as
// /bin/seccomp-probe, and that runs containers with the given runtime.
func seccompEnv(t *testing.T, probe, runtime string) *env {
	t.Helper()
	testutil.LookPath(t, runtime)
	e := newEnv(t)
	e.extraEnv = append(e.extraEnv, "CAISSON_RUNTIME="+runtime)
	data, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.rootfs, "bin", "seccomp-probe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// probe runs the probe in a new container with the given run options and
// returns what it printed, NAME → ok or errno name.
func (e *env) probe(opts []string, calls ...string) map[string]string {
	e.t.Helper()
	args := append(append([]string{"run", "--rm"}, opts...), "--rootfs", e.rootfs, "/bin/seccomp-probe")
	out := e.ok(append(args, calls...)...)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	return got
}

func results(seccomp string, calls []string, result string) map[string]string {
	m := map[string]string{"seccomp": seccomp}
	for _, c := range calls {
		m[c] = result
	}
	return m
}

// Containers run under Docker's default seccomp profile (Seccomp: 2 in
// /proc/self/status) unless told otherwise, with runc and with crun: the
// calls Docker refuses fail with EPERM; unconfined, the same calls get past
// seccomp; a custom profile is the one in force.
func TestSeccompProfiles(t *testing.T) {
	probe := seccompProbe(t)
	profile := filepath.Join(t.TempDir(), "deny-mkdir.json")
	if err := os.WriteFile(profile, []byte(`{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, runtime := range []string{"runc", "crun"} {
		t.Run(runtime, func(t *testing.T) {
			e := seccompEnv(t, probe, runtime)
			calls := append([]string{"seccomp"}, seccompDenied...)
			t.Run("default", func(t *testing.T) {
				if diff := cmp.Diff(results("2", seccompDenied, "EPERM"), e.probe(nil, calls...)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
			t.Run("builtin", func(t *testing.T) {
				got := e.probe([]string{"--security-opt", "seccomp=builtin"}, calls...)
				if diff := cmp.Diff(results("2", seccompDenied, "EPERM"), got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
			t.Run("unconfined", func(t *testing.T) {
				got := e.probe([]string{"--security-opt", "seccomp=unconfined"}, calls...)
				if got["seccomp"] != "0" {
					t.Errorf("Seccomp: %s, want 0", got["seccomp"])
				}
				// Past seccomp the kernel decides: a key, a personality;
				// perf events as perf_event_paranoid says (EACCES), the
				// threaded unshare EINVAL, never seccomp's EPERM.
				for _, c := range []string{"add_key", "keyctl", "personality", "unshare", "perf_event_open"} {
					if got[c] == "EPERM" || got[c] == "" {
						t.Errorf("%s: %q, want it past seccomp", c, got[c])
					}
				}
			})
			t.Run("custom profile", func(t *testing.T) {
				got := e.probe([]string{"--security-opt", "seccomp=" + profile}, "seccomp", "mkdir", "personality")
				if diff := cmp.Diff(map[string]string{"seccomp": "2", "mkdir": "EPERM", "personality": "ok"}, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				// The same mkdir under the default profile works.
				if got := e.probe(nil, "mkdir"); got["mkdir"] != "ok" {
					t.Errorf("mkdir under the default profile: %s", got["mkdir"])
				}
			})
		})
	}
}

// inspect shows the profile in force, and the bundle the runtime read has
// the filter and says which profile it is.
func TestSeccompInspectAndBundle(t *testing.T) {
	e := newEnv(t)
	profile := filepath.Join(t.TempDir(), "deny-mkdir.json")
	body := []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`)
	if err := os.WriteFile(profile, body, 0o644); err != nil {
		t.Fatal(err)
	}
	custom := api.CustomSeccomp(profile, body)
	custom.Custom = "" // the checkpoint keeps its source and digest only
	for _, tc := range []struct {
		name   string
		opts   []string
		want   api.Seccomp
		filter bool
	}{
		{"default", nil, api.Seccomp{Profile: api.SeccompDefault}, true},
		{"unconfined", []string{"--security-opt", "seccomp=unconfined"}, api.Seccomp{Profile: api.SeccompUnconfined}, false},
		{"custom", []string{"--security-opt", "seccomp=" + profile}, custom, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "seccomp-" + tc.name
			e.ok(append(append([]string{"run", "--name", name}, tc.opts...), "--rootfs", e.rootfs, "true")...)
			c := e.inspect(name)
			if diff := cmp.Diff(tc.want, c.Spec.Seccomp); diff != "" {
				t.Errorf("inspect's seccomp (-want +got):\n%s", diff)
			}
			data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var bundle specs.Spec
			if err := json.Unmarshal(data, &bundle); err != nil {
				t.Fatal(err)
			}
			if got := bundle.Linux.Seccomp != nil; got != tc.filter {
				t.Errorf("bundle has a seccomp filter: %v, want %v", got, tc.filter)
			}
			want := map[string]string{oci.AnnotationSeccompProfile: tc.want.Profile}
			if tc.want.Digest != "" {
				want[oci.AnnotationSeccompDigest] = tc.want.Digest
			}
			for k, v := range want {
				if bundle.Annotations[k] != v {
					t.Errorf("bundle annotation %s: %q, want %q", k, bundle.Annotations[k], v)
				}
			}
			e.ok("rm", name)
		})
	}
}

// Security options caisson does not implement, and profiles it cannot
// use, are refused before any container exists.
func TestSeccompRefused(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, opt := range map[string]string{
		"apparmor":          "apparmor=unconfined",
		"no-new-privileges": "no-new-privileges=false",
		"missing file":      "seccomp=" + filepath.Join(dir, "nope.json"),
		"device":            "seccomp=/dev/zero",
		"directory":         "seccomp=" + dir,
		"not JSON":          "seccomp=" + write("bad.json", "defaultAction: allow"),
		"misspelt field":    "seccomp=" + write("typo.json", `{"defaultAcion": "SCMP_ACT_ERRNO", "syscalls": []}`),
		"notify listener":   "seccomp=" + write("notify.json", `{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock", "syscalls": []}`),
		"unknown action":    "seccomp=" + write("action.json", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_DENY"}]}`),
	} {
		t.Run(name, func(t *testing.T) {
			if r := e.caisson("run", "--rm", "--security-opt", opt, "--rootfs", e.rootfs, "true"); r.code != 125 {
				t.Errorf("--security-opt %s: %s, want exit 125", opt, r)
			}
			if ids := strings.Fields(e.ok("ps", "-aq")); len(ids) > 0 {
				t.Errorf("containers left: %v", ids)
			}
		})
	}
}

// The admin's policy (--seccomp-allow, env CAISSON_SECCOMP_ALLOW) refuses
// the profiles it does not name before any container exists; the flag
// overrides the environment.
func TestSeccompPolicy(t *testing.T) {
	e := newEnv(t)
	profile := filepath.Join(t.TempDir(), "allow-all.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "CAISSON_SECCOMP_ALLOW=default")
	for _, tc := range []struct {
		name   string
		global []string
		opt    string
		code   int
	}{
		{"unconfined refused", nil, "seccomp=unconfined", 125},
		{"custom refused", nil, "seccomp=" + profile, 125},
		{"default allowed", nil, "seccomp=builtin", 0},
		{"flag over env", []string{"--seccomp-allow", "default,custom"}, "seccomp=" + profile, 0},
		{"flag refuses", []string{"--seccomp-allow", "custom"}, "seccomp=builtin", 125},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string(nil), tc.global...), "run", "--rm", "--security-opt", tc.opt, "--rootfs", e.rootfs, "true")
			if r := e.caisson(args...); r.code != tc.code {
				t.Errorf("%v: %s, want exit %d", args, r, tc.code)
			}
			if ids := strings.Fields(e.ok("ps", "-aq")); len(ids) > 0 {
				t.Errorf("containers left: %v", ids)
			}
		})
	}
	// The container's monitor, which inherits the environment, runs with
	// the settings its run was given, not the environment's: a flag that
	// overrides a bad variable overrides it there too.
	for _, tc := range []struct{ env, flag, value string }{
		{"CAISSON_SECCOMP_ALLOW=bogus", "--seccomp-allow", "default"},
		{"CAISSON_CGROUP_PARENT=/bogus/../parent", "--cgroup-parent", e.cgroupParent},
		{"CAISSON_LOG_LEVEL=bogus", "--log-level", "warn"},
	} {
		t.Run("flag over a bad "+tc.env, func(t *testing.T) {
			env := e.extraEnv
			t.Cleanup(func() { e.extraEnv = env })
			e.extraEnv = append(append([]string(nil), env...), tc.env)
			if r := e.caisson(tc.flag, tc.value, "run", "--rm", "--rootfs", e.rootfs, "true"); r.code != 0 {
				t.Errorf("run: %s, want exit 0", r)
			}
		})
	}
}

// On a root machine the seccomp tests run: none of their gates (root, runc,
// crun, busybox, the Go toolchain that builds the probe) skips them.
func TestSeccompTestsRunAsRoot(t *testing.T) {
	if os.Geteuid() != 0 || testutil.Pure() {
		t.Skip("checks what the tests do on a root machine")
	}
	skipped := true
	t.Run("gates", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		probe := seccompProbe(t)
		seccompEnv(t, probe, "runc")
		seccompEnv(t, probe, "crun")
	})
	if skipped {
		t.Error("the seccomp tests skip on a root machine")
	}
}
