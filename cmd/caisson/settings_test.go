package main

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/pflag"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
)

// The tests never read this machine's config file.
func init() { defaultConfigPath = "/nonexistent/caisson-test/config.toml" }

// clearSettingsEnv sets every variable a setting reads, and the one that
// names the config file, to the empty string for the duration of t, which
// counts as unset (applyEnv, configPath): a test that resolves settings
// does not depend on what its caller exported (scripts/demo.sh exports
// some). A test sets what it needs after.
func clearSettingsEnv(t *testing.T) {
	t.Helper()
	t.Setenv(configEnv, "")
	for _, s := range settings {
		for _, name := range s.env {
			t.Setenv(name, "")
		}
	}
}

// leaves calls fn with the key and value of every setting of c, found by
// reflection: the fields of the sections, the file's keys.
func leaves(c *config.Config, fn func(key string, v reflect.Value)) {
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f, sf := v.Field(i), v.Type().Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
			_, text := f.Addr().Interface().(encoding.TextMarshaler)
			if f.Kind() == reflect.Struct && !text {
				walk(prefix+name+".", f)
				continue
			}
			fn(prefix+name, f)
		}
	}
	walk("", reflect.ValueOf(c).Elem())
}

// TestSettingsTable: every key of the file has one setting, with a flag
// and a variable of its own, whose field is that key's.
func TestSettingsTable(t *testing.T) {
	var c config.Config
	fields := map[string]any{}
	leaves(&c, func(key string, v reflect.Value) {
		if key != "version" && !slices.Contains(fileOnlyKeys, key) {
			fields[key] = v.Addr().Interface()
		}
	})
	// A flag may serve settings of several sections (--master sets
	// agent.master for the agent and client.master for the commands that
	// call the master): no command takes two sections that share a flag,
	// or newRoot would panic. Within a section, and against the global
	// flags, a flag is unique.
	global := map[string]bool{"config": true} // the flags of every command
	inSection := map[string]bool{}            // "section/flag"
	anySection := map[string]bool{}
	envs := map[string]bool{configEnv: true}
	for _, s := range settings {
		if fields[s.key] == nil {
			t.Errorf("setting %s: no such key in the file", s.key)
			continue
		}
		if got := s.field(&c); got != fields[s.key] {
			t.Errorf("setting %s: its field is not the key's", s.key)
		}
		delete(fields, s.key)
		section, _, _ := strings.Cut(s.key, ".")
		isGlobal := slices.ContainsFunc(globalSettings, func(p string) bool { return strings.HasPrefix(s.key, p) })
		if s.flag == "" || global[s.flag] || inSection[section+"/"+s.flag] || (isGlobal && anySection[s.flag]) {
			t.Errorf("setting %s: flag %q empty or taken", s.key, s.flag)
		}
		if isGlobal {
			global[s.flag] = true
		} else {
			inSection[section+"/"+s.flag], anySection[s.flag] = true, true
		}
		for _, e := range s.env {
			if envs[e] {
				t.Errorf("setting %s: variable %s taken", s.key, e)
			}
			envs[e] = true
		}
		if len(s.env) == 0 {
			t.Errorf("setting %s: no variable", s.key)
		}
	}
	for key := range fields {
		t.Errorf("key %s has no setting: no flag or variable overrides it", key)
	}
}

// culprit is what a refused setting's error says of it: its key, and the
// flag or variable that set it, or the file's line.
type culprit struct {
	Key, From string
	Line      int
}

func culprits(err error) []culprit {
	var out []culprit
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *settingError:
			out = append(out, culprit{Key: e.key, From: e.from})
		case *config.KeyError:
			out = append(out, culprit{Key: e.Key, Line: e.Line})
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// TestSettingsRefused: every command refuses a bad setting, from a flag,
// a variable or the file, before it does anything, even a command that
// does not use it (sim), and the error names the key and where the value
// came from.
func TestSettingsRefused(t *testing.T) {
	clearSettingsEnv(t)
	sim := []string{"sim", "../../examples/sim-small.yaml", "--format", "json"}
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		args    []string
		environ map[string]string
		want    []culprit
	}{
		{"log level bogus", append([]string{"--log-level", "bogus"}, sim...), nil, []culprit{{Key: "log.level", From: "--log-level"}}},
		{"log level empty", append([]string{"--log-level", ""}, sim...), nil, []culprit{{Key: "log.level", From: "--log-level"}}},
		{"log level slog offset", append([]string{"--log-level", "warn+2"}, sim...), nil, []culprit{{Key: "log.level", From: "--log-level"}}},
		{"root empty", append([]string{"--root", ""}, sim...), nil, []culprit{{Key: "state.root", From: "--root"}}},
		{"runtime timeout", []string{"--runtime-timeout", "1ms", "ps"}, nil, []culprit{{Key: "runtime.timeout", From: "--runtime-timeout"}}},
		{"cni timeout after the command", []string{"ps", "--cni-timeout", "-1s"}, nil, []culprit{{Key: "cni.timeout", From: "--cni-timeout"}}},
		{"cni plugin path empty", []string{"network", "ls", "--cni-plugin-path", "::"}, nil, []culprit{{Key: "cni.plugin_dirs", From: "--cni-plugin-path"}}},
		{"cgroup parent relative", []string{"--cgroup-parent", "caisson", "rm", "x"}, nil, []culprit{{Key: "cgroups.parent", From: "--cgroup-parent"}}},
		{"resources empty items", []string{"--resources", ";;;", "node", "resources"}, nil, []culprit{{Key: "host.resources", From: "--resources"}}},
		{"resources trailing", []string{"--resources", "cpus:8;", "node", "resources"}, nil, []culprit{{Key: "host.resources", From: "--resources"}}},
		{"resources garbage", []string{"--resources", "cpus:8;garbage", "node", "resources"}, nil, []culprit{{Key: "host.resources", From: "--resources"}}},
		{"resources overlap", []string{"--resources", "ports:[31000-32000,31500]", "node", "resources"}, nil, []culprit{{Key: "host.resources", From: "--resources"}}},
		{"reserve empty items", []string{"--reserve", "cpus:1;;mem:1g", "node", "resources"}, nil, []culprit{{Key: "host.reserve", From: "--reserve"}}},
		{"reserve overlap", []string{"--reserve", "ports:[80,80]", "node", "resources"}, nil, []culprit{{Key: "host.reserve", From: "--reserve"}}},
		{"reserve gpus", []string{"--reserve", "gpus:0", "node", "resources"}, nil, []culprit{{Key: "host.reserve", From: "--reserve"}}},
		{"gpu backend", []string{"--gpu-backend", "mock:dgx-z", "gpu", "ls"}, nil, []culprit{{Key: "gpu.backend", From: "--gpu-backend"}}},
		{"gpu numa affinity", []string{"--gpu-numa-affinity", "strict", "run", "--rootfs", "/x", "true"}, nil, []culprit{{Key: "gpu.numa_affinity", From: "--gpu-numa-affinity"}}},
		{"seccomp allow unknown", []string{"--seccomp-allow", "default,none", "ps"}, nil, []culprit{{Key: "security.seccomp_allow", From: "--seccomp-allow"}}},
		{"seccomp allow empty", []string{"--seccomp-allow", "", "ps"}, nil, []culprit{{Key: "security.seccomp_allow", From: "--seccomp-allow"}}},
		{"two flags", []string{"--runtime-timeout", "0", "--cni-timeout", "0", "ps"}, nil, []culprit{
			{Key: "runtime.timeout", From: "--runtime-timeout"}, {Key: "cni.timeout", From: "--cni-timeout"}}},

		{"log level from env", sim, map[string]string{"CAISSON_LOG_LEVEL": "verbose"}, []culprit{{Key: "log.level", From: "CAISSON_LOG_LEVEL"}}},
		{"resources from env", sim, map[string]string{"CAISSON_RESOURCES": ";"}, []culprit{{Key: "host.resources", From: "CAISSON_RESOURCES"}}},
		{"reserve from env", sim, map[string]string{"CAISSON_RESERVE": "bogus"}, []culprit{{Key: "host.reserve", From: "CAISSON_RESERVE"}}},
		{"gpu backend from env", sim, map[string]string{"CAISSON_GPU_BACKEND": "cuda"}, []culprit{{Key: "gpu.backend", From: "CAISSON_GPU_BACKEND"}}},
		{"seccomp allow from env", sim, map[string]string{"CAISSON_SECCOMP_ALLOW": "builtin"}, []culprit{{Key: "security.seccomp_allow", From: "CAISSON_SECCOMP_ALLOW"}}},
		{"runtime timeout from env", sim, map[string]string{"CAISSON_RUNTIME_TIMEOUT": "1ms"}, []culprit{{Key: "runtime.timeout", From: "CAISSON_RUNTIME_TIMEOUT"}}},
		{"cni timeout from env, no duration", sim, map[string]string{"CAISSON_CNI_TIMEOUT": "soon"}, []culprit{{Key: "cni.timeout", From: "CAISSON_CNI_TIMEOUT"}}},
		{"max image size from env, no size", sim, map[string]string{"CAISSON_MAX_IMAGE_SIZE": "lots"}, []culprit{{Key: "images.max_size", From: "CAISSON_MAX_IMAGE_SIZE"}}},
		{"cgroup parent from env", sim, map[string]string{"CAISSON_CGROUP_PARENT": "/a/../b"}, []culprit{{Key: "cgroups.parent", From: "CAISSON_CGROUP_PARENT"}}},
		{"two variables unread", sim, map[string]string{"CAISSON_RUNTIME_TIMEOUT": "x", "CAISSON_CNI_TIMEOUT": "y"}, []culprit{
			{Key: "runtime.timeout", From: "CAISSON_RUNTIME_TIMEOUT"}, {Key: "cni.timeout", From: "CAISSON_CNI_TIMEOUT"}}},

		{"file: a value", append([]string{"--config", file("value", "version = 1\n\n[cni]\ntimeout = \"10ms\"\n")}, sim...), nil,
			[]culprit{{Key: "cni.timeout", Line: 4}}},
		{"file named by the environment", sim, map[string]string{configEnv: file("env", "version = 1\n[gpu]\nbackend = \"cuda\"\n")},
			[]culprit{{Key: "gpu.backend", Line: 3}}},
		{"file: unknown keys", append([]string{"--config", file("unknown", "version = 1\n[cni]\ntimeout = \"1m\"\ntimout = \"2m\"\n[network]\n")}, sim...), nil,
			[]culprit{{Key: "cni.timout", Line: 4}, {Key: "network", Line: 5}}},
		{"file: version 2", append([]string{"--config", file("v2", "version = 2\n")}, sim...), nil, []culprit{{Key: "version", Line: 1}}},
		{"file: no version", append([]string{"--config", file("v0", "[log]\nlevel = \"info\"\n")}, sim...), nil, []culprit{{Key: "version"}}},
		{"file: syntax", append([]string{"--config", file("syntax", "version = 1\n[log\n")}, sim...), nil, []culprit{{Line: 2}}},
		{"file, env and flag each refused", append([]string{"--config", file("all", "version = 1\n[runtime]\ntimeout = \"1ms\"\n"), "--log-level", "x"}, sim...),
			map[string]string{"CAISSON_RESERVE": "x"}, []culprit{{Key: "log.level", From: "--log-level"}, {Key: "runtime.timeout", Line: 3}, {Key: "host.reserve", From: "CAISSON_RESERVE"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.environ {
				t.Setenv(k, v)
			}
			args := append([]string{"--root", "/dev/null/x", "--run-root", "/dev/null/y"}, tc.args...)
			out, err := runCaisson(t, args...)
			if !errors.Is(err, api.ErrInvalid) || exitCode(err) != exitCaissonError {
				t.Errorf("%v: %v, want an invalid-input error (exit 125)", tc.args, err)
			}
			if diff := cmp.Diff(tc.want, culprits(err)); diff != "" {
				t.Errorf("culprits (-want +got):\n%s\nerror: %v", diff, err)
			}
			if out != "" {
				t.Errorf("the command ran:\n%s", out)
			}
		})
	}
	fixture := []string{"--path.procfs", "../../resources/testdata/x86-xeon-2s/proc", "--path.sysfs", "../../resources/testdata/x86-xeon-2s/sys", "--root", t.TempDir()}
	for _, tc := range []struct {
		args    []string
		environ map[string]string
	}{
		{append([]string{"--log-level", "debug"}, sim...), nil},
		{append([]string{"--log-level", "INFO"}, sim...), nil},
		{append([]string{"--log-level", "Warn"}, sim...), nil},
		{append(append([]string{"--resources", "cpus:8;mem:16g;ports:[80-89,90]", "--reserve", "cpus:1"}, fixture...), "node", "resources"), nil},
		{append(append([]string{"--resources", ""}, fixture...), "node", "resources"), nil},
		// A setting's flag may be empty where its key may: not refused as
		// a command's own flag given empty would be.
		{append(append([]string{"--nvml-helper", "", "--gpu-cdi-spec="}, fixture...), "node", "resources"), nil},
		{sim, map[string]string{"CAISSON_GPU_BACKEND": "mock:dgxa100", "CAISSON_GPU_NUMA_AFFINITY": "none"}},
		{sim, map[string]string{"CAISSON_SECCOMP_ALLOW": "default"}},
		{sim, map[string]string{"CAISSON_SECCOMP_ALLOW": "unconfined,custom,default"}},
		{sim, map[string]string{"CAISSON_RUNTIME_TIMEOUT": "1s", "CAISSON_CNI_TIMEOUT": "1h"}},
		// Set to the empty string, a variable counts as unset.
		{sim, map[string]string{"CAISSON_LOG_LEVEL": "", "CAISSON_SECCOMP_ALLOW": "", "CAISSON_ROOT": ""}},
	} {
		t.Run(fmt.Sprintf("accepted %v %v", tc.environ, tc.args), func(t *testing.T) {
			for k, v := range tc.environ {
				t.Setenv(k, v)
			}
			if _, err := runCaisson(t, tc.args...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSettingsPrecedence: a flag the user gave overrides the variable,
// which overrides the file, which overrides the default; a flag not given
// overrides nothing, and a variable set empty counts as unset. Seen
// through what node resources offers: host.resources, cpus.
func TestSettingsPrecedence(t *testing.T) {
	clearSettingsEnv(t)
	dir := t.TempDir()
	withResources := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(withResources, []byte("version = 1\n[host]\nresources = \"cpus:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.toml")
	if err := os.WriteFile(empty, []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fixture := "../../resources/testdata/x86-xeon-2s"
	t.Setenv("CAISSON_PATH_PROCFS", filepath.Join(fixture, "proc"))
	t.Setenv("CAISSON_PATH_SYSFS", filepath.Join(fixture, "sys"))
	var detected api.NodeResources
	b, err := os.ReadFile(filepath.Join(fixture, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &detected); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file string
		env  string // CAISSON_RESOURCES, "-" for unset
		flag string // --resources, "-" for not given
		want float64
	}{
		{"default", empty, "-", "-", detected.CPUs},
		{"file", withResources, "-", "-", 1},
		{"env over file", withResources, "cpus:2", "-", 2},
		{"flag over env over file", withResources, "cpus:2", "cpus:3", 3},
		{"flag over file", withResources, "-", "cpus:3", 3},
		{"empty env is unset", withResources, "", "-", 1},
		{"empty flag is a value: none", withResources, "cpus:2", "", detected.CPUs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "-" {
				t.Setenv("CAISSON_RESOURCES", tc.env)
			}
			args := []string{"--config", tc.file, "--root", t.TempDir(), "node", "resources", "--format", "json"}
			if tc.flag != "-" {
				args = append(args, "--resources", tc.flag)
			}
			out, err := runCaisson(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			var got api.NodeResources
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			if got.CPUs != tc.want {
				t.Errorf("cpus %g, want %g", got.CPUs, tc.want)
			}
		})
	}

	// A flag given wins over its variable even where the variable could
	// not be read as the setting's type (a duration, a size): the variable
	// is not read at all. Seen through what the command resolved.
	for _, tc := range []struct {
		key, env, flag string
		cmd            []string
		want           func(c *config.Config) any
		wantValue      any
	}{
		{"cni.timeout", "soon", "5s", []string{"ps"}, func(c *config.Config) any { return c.CNI.Timeout.Duration }, 5 * time.Second},
		{"runtime.timeout", "later", "7s", []string{"ps"}, func(c *config.Config) any { return c.Runtime.Timeout.Duration }, 7 * time.Second},
		{"images.max_size", "lots", "1g", []string{"run", "--rootfs", "/x", "true"}, func(c *config.Config) any { return c.Images.MaxSize }, config.Size(1 << 30)},
	} {
		t.Run("flag over unreadable env/"+tc.key, func(t *testing.T) {
			s := settingFor(tc.key)
			t.Setenv(s.env[0], tc.env)
			g := &globals{}
			root := newRoot(g)
			// The command fails after the settings are resolved (its
			// work dir cannot be made): only the settings count here.
			root.SetArgs(append([]string{"--root", "/dev/null/x", "--run-root", "/dev/null/y", tc.cmd[0], "--" + s.flag, tc.flag}, tc.cmd[1:]...))
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			var se *settingError
			if err := root.ExecuteContext(context.Background()); errors.As(err, &se) {
				t.Fatalf("--%s %s with %s=%s: %v, want the flag to win", s.flag, tc.flag, s.env[0], tc.env, err)
			}
			if diff := cmp.Diff(tc.wantValue, tc.want(&g.cfg)); diff != "" {
				t.Errorf("%s resolved (-want +got):\n%s", tc.key, diff)
			}
		})
	}
}

// TestConfigFileNamed: a file named by --config or CAISSON_CONFIG must
// exist; the default one may not (init points it at nothing).
func TestConfigFileNamed(t *testing.T) {
	clearSettingsEnv(t)
	sim := []string{"sim", "../../examples/sim-small.yaml", "--format", "json"}
	missing := filepath.Join(t.TempDir(), "missing.toml")
	if _, err := runCaisson(t, append([]string{"--config", missing}, sim...)...); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("--config missing: %v, want fs.ErrNotExist", err)
	}
	t.Setenv(configEnv, missing)
	if _, err := runCaisson(t, sim...); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s missing: %v, want fs.ErrNotExist", configEnv, err)
	}
	t.Setenv(configEnv, "")
	if _, err := runCaisson(t, sim...); err != nil {
		t.Errorf("no file at the default path: %v", err)
	}
}

// TestMonitorGetsEverySetting: the monitor, which cleans up after its
// container, reads every setting its container's command resolved, and
// nothing of its own environment. Every key is set to a value of its own
// (none its default), the monitor's command line is made as open makes
// it, the command runs as far as the monitor's start, and what it resolved
// is compared with what was given.
func TestMonitorGetsEverySetting(t *testing.T) {
	// Values the checks accept for keys that are not paths.
	valid := map[string]any{
		"log.level": "debug", "gpu.backend": "mock:dgxh100", "gpu.numa_affinity": "none",
		"host.resources": "cpus:3", "host.reserve": "mem:1g", "security.seccomp_allow": []string{"unconfined"},
		"state.root": filepath.Join(t.TempDir(), "lib"), "state.run_root": filepath.Join(t.TempDir(), "run"),
		"master.listen": "127.0.0.1:7", "agent.listen": "127.0.0.1:8", "agent.advertise": "node-1:9", "agent.metrics_listen": "127.0.0.1:12",
		"agent.master": "https://master-1:10", "client.master": "https://master-2:11", "agent.labels": []string{"zone=a", "rack=12"},
		// The monitor runs the post-stop hooks.
		"hooks.exec":       []config.ExecHook{{Name: "stopped", Point: "post-stop", Path: "/bin/true", Timeout: config.Duration{Duration: 3 * time.Second}}},
		"hooks.oci":        []config.OCIHook{{Stage: "poststop", Path: "/bin/true", Args: []string{"-x"}}},
		"hooks.nri.enable": true, "hooks.nri.plugin_path": filepath.Join(t.TempDir(), "nri"), "hooks.nri.plugin_config_path": "/set/nri/conf.d",
		"hooks.nri.socket": "/set/nri.sock",
	}
	want := config.Default()
	def := config.Default()
	n := 0
	leaves(&want, func(key string, v reflect.Value) {
		n++
		if x, ok := valid[key]; ok {
			v.Set(reflect.ValueOf(x))
			return
		}
		switch p := v.Addr().Interface().(type) {
		case *int:
			if key == "version" {
				return
			}
			*p = 100 + n
		case *string:
			*p = "/set/" + key
		case *[]string:
			*p = []string{"/set/" + key, "/set/" + key + "/2"}
		case *config.Duration:
			p.Duration = time.Duration(n) * time.Second
		case *config.Size:
			*p = config.Size(n) << 20
		default:
			t.Fatalf("key %s: the test cannot set a %T; teach it", key, p)
		}
	})
	leaves(&def, func(key string, d reflect.Value) {
		var got reflect.Value
		leaves(&want, func(k string, v reflect.Value) {
			if k == key {
				got = v
			}
		})
		if key != "version" && reflect.DeepEqual(d.Interface(), got.Interface()) {
			t.Errorf("key %s keeps its default: the test would not see it lost", key)
		}
	})
	if err := want.Validate(); err != nil {
		t.Fatalf("the test's values are refused: %v", err)
	}

	cmdline, prepare, err := (&globals{cfg: want}).monitorCommand()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(want.State.RunRoot, 0o711); err != nil { // as containerizer.New does
		t.Fatal(err)
	}
	if err := prepare(); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cmdline[0] != self || cmdline[len(cmdline)-1] != "monitor" {
		t.Fatalf("monitor command %q", cmdline)
	}
	path := cmdline[2]
	if dir := filepath.Dir(path); dir != filepath.Join(want.State.RunRoot, "config") {
		t.Errorf("the monitor's file is in %s, want the run root's config dir", dir)
	}
	for p, mode := range map[string]fs.FileMode{path: 0o600, filepath.Dir(path): 0o700 | fs.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, mode)
		}
	}

	// The monitor inherits its container's environment: none of it counts.
	for _, s := range settings {
		for _, e := range s.env {
			t.Setenv(e, "1") // wrong for most: an error if it were read
		}
	}
	t.Setenv(configEnv, "/nonexistent/config.toml")
	t.Setenv("CAISSON_MONITOR_SYNC_FD", "")
	g := &globals{}
	root := newRoot(g)
	root.SetArgs(append(slices.Clone(cmdline[1:]), "0123456789abcdef"))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	// It stops where the monitor refuses to start by hand, after the
	// configuration is resolved.
	if err := root.ExecuteContext(context.Background()); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("monitor: %v, want it refused for want of its descriptors", err)
	}
	if diff := cmp.Diff(want, g.cfg, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the monitor's settings (-want +got):\n%s", diff)
	}

	// The same settings share a file; others get their own.
	again, _, err := (&globals{cfg: want}).monitorCommand()
	if err != nil || again[2] != path {
		t.Errorf("same settings: file %v, %v; want %s", again, err, path)
	}
	other := want
	other.Log.Level = "error"
	if o, _, err := (&globals{cfg: other}).monitorCommand(); err != nil || o[2] == path {
		t.Errorf("other settings: file %v, %v; want another than %s", o, err, path)
	}
}

// TestOpenWritesNoMonitorConfig: a command that opens the containerizer
// but starts no monitor (ps) writes no monitor configuration, and leaves
// a fresh run root as the containerizer makes it, mode 0711.
func TestOpenWritesNoMonitorConfig(t *testing.T) {
	clearSettingsEnv(t)
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if _, err := runCaisson(t, "--root", filepath.Join(dir, "lib"), "--run-root", run, "ps"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(run, "config")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ps made the monitor's config dir: %v", err)
	}
	if fi, err := os.Stat(run); err != nil || fi.Mode() != 0o711|fs.ModeDir {
		t.Errorf("run root: %v, %v; want mode %v", fi.Mode(), err, 0o711|fs.ModeDir)
	}
}

// TestConfigDefault: caisson config default prints a file that config
// check accepts, that sets every key (read onto nothing it gives the
// defaults), and names each key's flag and variables.
func TestConfigDefault(t *testing.T) {
	clearSettingsEnv(t)
	out, err := runCaisson(t, "config", "default")
	if err != nil {
		t.Fatal(err)
	}
	var got config.Config
	if _, err := config.Decode([]byte(out), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if diff := cmp.Diff(config.Default(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the default file read onto nothing (-defaults +file):\n%s", diff)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := runCaisson(t, "config", "check", path); err != nil || msg != path+": ok\n" {
		t.Errorf("config check: %q, %v", msg, err)
	}
	for _, s := range settings {
		want := fmt.Sprintf("# flag --%s, env %s\n%s = ", s.flag, strings.Join(s.env, " then "), s.key[strings.Index(s.key, ".")+1:])
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the default file", want)
		}
	}
	// Loaded as every command loads it, it gives the defaults.
	g := &globals{}
	root := newRoot(g)
	root.SetArgs([]string{"--config", path, "config", "show"})
	var shown bytes.Buffer
	root.SetOut(&shown)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(config.Default(), g.cfg, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("resolved from the default file (-defaults +got):\n%s", diff)
	}
}

func TestConfigCheck(t *testing.T) {
	clearSettingsEnv(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("version = 1\n[cni]\ntimeout = \"1ms\"\nplugins = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only the file counts: not the variables, not a broken default file.
	t.Setenv("CAISSON_CNI_TIMEOUT", "5m")
	t.Setenv(configEnv, filepath.Join(dir, "missing.toml"))
	_, err := runCaisson(t, "config", "check", bad)
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("config check bad: %v, want api.ErrInvalid", err)
	}
	if diff := cmp.Diff([]culprit{{Key: "cni.plugins", Line: 4}}, culprits(err)); diff != "" {
		t.Errorf("culprits (-want +got):\n%s\nerror: %v", diff, err)
	}
	if _, err := runCaisson(t, "config", "check"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("config check of a named file that is missing: %v, want fs.ErrNotExist", err)
	}
	t.Setenv(configEnv, "")
	if out, err := runCaisson(t, "config", "check"); err != nil || !strings.Contains(out, "the defaults apply") {
		t.Errorf("config check without a file: %q, %v", out, err)
	}
}

// TestSettingFlagsWhereUsed: only the settings every command needs are
// global; each command takes as flags the settings it uses, and keeps
// taking them before its name (caisson --cni-timeout 5s run ...).
func TestSettingFlagsWhereUsed(t *testing.T) {
	clearSettingsEnv(t)
	root := newRootCmd()
	var global []string
	root.PersistentFlags().VisitAll(func(fl *pflag.Flag) { global = append(global, fl.Name) })
	if diff := cmp.Diff([]string{"config", "log-level", "root", "run-root"}, global); diff != "" {
		t.Errorf("global flags (-want +got):\n%s", diff)
	}
	settingsOf := func(path ...string) []string {
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		add := func(fl *pflag.Flag) {
			if isSetting(fl) && root.PersistentFlags().Lookup(fl.Name) != fl {
				keys = append(keys, fl.Annotations[settingAnnotation][0])
			}
		}
		c.LocalFlags().VisitAll(add)
		c.InheritedFlags().VisitAll(add)
		slices.Sort(keys)
		return keys
	}
	with := func(prefixes ...string) []string {
		var keys []string
		for _, s := range settings {
			if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s.key, p) }) {
				keys = append(keys, s.key)
			}
		}
		slices.Sort(keys)
		return keys
	}
	for _, tc := range []struct {
		path []string
		want []string
	}{
		{[]string{"sim"}, nil},
		{[]string{"volume-plugin"}, nil},
		{[]string{"config", "check"}, nil},
		{[]string{"monitor"}, nil},
		{[]string{"run"}, with("runtime.", "cgroups.", "cni.", "volumes.", "security.", "gpu.", "host.procfs", "host.sysfs", "images.")},
		{[]string{"ps"}, with("runtime.", "cgroups.", "cni.", "volumes.", "security.", "gpu.", "host.procfs", "host.sysfs")},
		{[]string{"network", "create"}, with("runtime.", "cgroups.", "cni.", "volumes.", "security.", "gpu.", "host.procfs", "host.sysfs")},
		{[]string{"gpu", "ls"}, with("gpu.", "host.procfs", "host.sysfs")},
		{[]string{"node", "resources"}, with("gpu.", "host.")},
	} {
		if diff := cmp.Diff(tc.want, settingsOf(tc.path...), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%v settings (-want +got):\n%s", tc.path, diff)
		}
	}
	// A command refuses the settings it does not take.
	if _, err := runCaisson(t, "--gpu-numa-affinity", "none", "config", "show"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("config show --gpu-numa-affinity: %v, want api.ErrInvalid", err)
	}
}

// TestHelpGroupsFlags: a command's help lists its own flags, then the
// settings it takes, then the global flags.
func TestHelpGroupsFlags(t *testing.T) {
	sections := regexp.MustCompile(`(?m)^([A-Z][A-Za-z ]+)(?: \(.*\))?:$`)
	for _, tc := range []struct {
		cmd  []string
		want []string
	}{
		{[]string{"sim", "--help"}, []string{"Usage", "Examples", "Flags", "Global Flags"}},
		{[]string{"run", "--help"}, []string{"Usage", "Flags", "Settings", "Global Flags"}},
		{[]string{"network", "--help"}, []string{"Usage", "Available Commands", "Flags", "Settings", "Global Flags"}},
		{[]string{"--help"}, []string{"Usage", "Available Commands", "Flags", "Global Flags"}},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(tc.cmd)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		usage := out.String()[strings.Index(out.String(), "Usage:"):]
		var got []string
		for _, m := range sections.FindAllStringSubmatch(usage, -1) {
			got = append(got, m[1])
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%v sections (-want +got):\n%s\n%s", tc.cmd, diff, out.String())
		}
	}
}

// TestDocsConfiguration: docs/configuration.md shows the default file as
// config default prints it, and names every key, flag and variable.
func TestDocsConfiguration(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	def, err := defaultFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, append(append([]byte("```toml\n"), def...), "```\n"...)) {
		t.Error("docs/configuration.md does not show the default file as caisson config default prints it")
	}
	for _, s := range settings {
		row := fmt.Sprintf("| `%s` | `--%s` |", s.key, s.flag)
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/configuration.md has no row %q", row)
		}
		for _, e := range s.env {
			if !bytes.Contains(doc, []byte("`"+e+"`")) {
				t.Errorf("docs/configuration.md does not name %s", e)
			}
		}
	}
}
