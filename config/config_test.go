package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
)

// where is what a test expects of a *KeyError: its key and line.
type where struct {
	Key  string
	Line int
}

func wheres(err error) []where {
	var out []where
	for _, ke := range KeyErrors(err) {
		out = append(out, where{ke.Key, ke.Line})
	}
	return out
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDecode: what a file sets replaces the defaults; what it leaves out
// keeps them; lists are replaced, not merged.
func TestDecode(t *testing.T) {
	c := Default()
	lines, err := Decode([]byte(`version = 1
[cgroups]
parent = "/site/caisson"

[cni]
  config_dir = "/srv/net.d"
  plugin_dirs = ["/srv/cni"]
  timeout = "90s"

[images]
max_size = "512m"
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Cgroups.Parent = "/site/caisson"
	want.CNI.ConfigDir = "/srv/net.d"
	want.CNI.PluginDirs = []string{"/srv/cni"}
	want.CNI.Timeout = Duration{90 * time.Second}
	want.Images.MaxSize = 512 << 20
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	wantLines := Lines{"version": 1, "cgroups": 2, "cgroups.parent": 3, "cni": 5, "cni.config_dir": 6, "cni.plugin_dirs": 7,
		"cni.timeout": 8, "images": 10, "images.max_size": 11}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

// TestDecodeRefuses: a file that is not this version's, a key this
// version does not know, a value of the wrong type: each is refused with
// its key and line, and the config is left as it was.
func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []where
	}{
		{"no version", "[cni]\ntimeout = \"1m\"\n", []where{{"version", 0}}},
		{"version 2", "version = 2\n[cni]\nnew_key = 1\n", []where{{"version", 1}}},
		{"version 0", "\nversion = 0\n", []where{{"version", 2}}},
		{"version a string", "version = \"1\"\n", []where{{"version", 1}}},
		{"unknown key", "version = 1\n[cni]\ntimeout = \"1m\"\nbogus = 1\n", []where{{"cni.bogus", 4}}},
		{"unknown keys", "version = 1\nroot = \"/x\"\n[bogus]\nx = 1\n", []where{{"root", 2}, {"bogus", 3}}},
		{"unknown nested table", "version = 1\n[cni.extra]\nx = 1\n", []where{{"cni.extra", 2}}},
		{"a reserved section is empty", "version = 1\n[hooks]\nlisten = \":8080\"\n", []where{{"hooks.listen", 3}}},
		{"a cluster key misspelt", "version = 1\n[master]\nlisten = \":8080\"\nlisen = \":8081\"\n", []where{{"master.lisen", 4}}},
		{"a count as a string", "version = 1\n[master]\noffer_fanout = \"2\"\n", []where{{"master.offer_fanout", 3}}},
		{"syntax", "version = 1\n[cni\n", []where{{"", 2}}},
		{"key twice", "version = 1\n[log]\nlevel = \"info\"\nlevel = \"debug\"\n", []where{{"log.level", 4}}},
		{"string for a list", "version = 1\n[cni]\nplugin_dirs = \"/opt/cni/bin\"\n", []where{{"cni.plugin_dirs", 3}}},
		{"duration without unit", "version = 1\n[runtime]\ntimeout = \"90\"\n", []where{{"runtime.timeout", 3}}},
		{"bad size", "version = 1\n[images]\nmax_size = \"lots\"\n", []where{{"images.max_size", 3}}},
		{"number for a string", "version = 1\n[gpu]\nbackend = 1\n", []where{{"gpu.backend", 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			_, err := Decode([]byte(tc.file), &c)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%v, want api.ErrInvalid", err)
			}
			if diff := cmp.Diff(tc.want, wheres(err)); diff != "" {
				t.Errorf("refused (-want +got):\n%s\nerror: %v", diff, err)
			}
			if diff := cmp.Diff(Default(), c); diff != "" {
				t.Errorf("the config changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidate: each section refuses what its component would, and every
// problem is reported with its key.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		keys []string
	}{
		{"version", func(c *Config) { c.Version = 2 }, []string{"version"}},
		{"state empty", func(c *Config) { c.State = State{} }, []string{"state.root", "state.run_root"}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level"}},
		{"log level slog offset", func(c *Config) { c.Log.Level = "warn+2" }, []string{"log.level"}},
		{"runtime", func(c *Config) { c.Runtime = Runtime{Timeout: Duration{time.Millisecond}} }, []string{"runtime.binary", "runtime.timeout"}},
		{"cgroups relative", func(c *Config) { c.Cgroups.Parent = "caisson" }, []string{"cgroups.parent"}},
		{"cgroups root", func(c *Config) { c.Cgroups.Parent = "/" }, []string{"cgroups.parent"}},
		{"cgroups unclean", func(c *Config) { c.Cgroups.Parent = "/a/../b" }, []string{"cgroups.parent"}},
		{"cni empty", func(c *Config) { c.CNI = CNI{Timeout: Duration{-time.Second}} }, []string{
			"cni.config_dir", "cni.plugin_dirs", "cni.default_network", "cni.default_subnet", "cni.default_bridge", "cni.timeout"}},
		{"cni empty plugin dir", func(c *Config) { c.CNI.PluginDirs = []string{"/opt/cni/bin", ""} }, []string{"cni.plugin_dirs"}},
		{"images", func(c *Config) { c.Images = Images{MaxSize: -1, InsecureRegistries: []string{""}} },
			[]string{"images.max_size", "images.insecure_registries"}},
		{"seccomp empty", func(c *Config) { c.Security.SeccompAllow = nil }, []string{"security.seccomp_allow"}},
		{"seccomp unknown", func(c *Config) { c.Security.SeccompAllow = []string{"default", "builtin"} }, []string{"security.seccomp_allow"}},
		{"gpu", func(c *Config) { c.GPU = GPU{Backend: "cuda", NUMAAffinity: "strict"} }, []string{"gpu.backend", "gpu.numa_affinity"}},
		{"host empty", func(c *Config) { c.Host = Host{} }, []string{"host.procfs", "host.sysfs"}},
		{"host amounts", func(c *Config) { c.Host.Resources, c.Host.Reserve = "cpus:8;", "gpus:0" }, []string{"host.resources", "host.reserve"}},
		{"host overlapping ports", func(c *Config) { c.Host.Resources = "ports:[31000-32000,31500]" }, []string{"host.resources"}},
		{"master empty", func(c *Config) { c.Master = Master{} }, []string{
			"master.listen", "master.state_dir", "master.tick_interval", "master.heartbeat_interval", "master.heartbeat_timeout",
			"master.agent_lost_timeout", "master.snapshot_every", "master.offer_fanout", "master.offer_timeout", "master.retention"}},
		{"master negative", func(c *Config) {
			c.Master.KillGrace, c.Master.Refuse, c.Master.ReclaimGrace = Duration{-1}, Duration{-1}, Duration{-1}
		}, []string{"master.kill_grace", "master.refuse", "master.reclaim_grace"}},
		{"master timeouts out of order", func(c *Config) {
			c.Master.HeartbeatInterval, c.Master.HeartbeatTimeout, c.Master.AgentLostTimeout = Duration{10 * time.Second}, Duration{5 * time.Second}, Duration{4 * time.Second}
		}, []string{"master.heartbeat_timeout", "master.agent_lost_timeout"}},
		{"master listen", func(c *Config) { c.Master.Listen = "7050" }, []string{"master.listen"}},
		{"master listen port", func(c *Config) { c.Master.Listen = ":70500" }, []string{"master.listen"}},
		{"agent empty", func(c *Config) { c.Agent = Agent{} }, []string{"agent.master", "agent.listen", "agent.state_dir", "agent.kept_logs", "agent.max_kept_log"}},
		{"agent master http", func(c *Config) { c.Agent.Master = "http://m:7050" }, []string{"agent.master"}},
		{"agent master no host", func(c *Config) { c.Agent.Master = "https://:7050" }, []string{"agent.master"}},
		{"agent master credentials", func(c *Config) { c.Agent.Master = "https://u:secret@m:7050" }, []string{"agent.master"}},
		{"agent master path", func(c *Config) { c.Agent.Master = "https://m:7050/v1" }, []string{"agent.master"}},
		{"agent master port", func(c *Config) { c.Agent.Master = "https://m:0" }, []string{"agent.master"}},
		{"agent advertise no host", func(c *Config) { c.Agent.Advertise = ":7051" }, []string{"agent.advertise"}},
		{"agent advertise no port", func(c *Config) { c.Agent.Advertise = "node-1" }, []string{"agent.advertise"}},
		{"agent label no value", func(c *Config) { c.Agent.Labels = []string{"zone"} }, []string{"agent.labels"}},
		{"agent label no key", func(c *Config) { c.Agent.Labels = []string{"=a"} }, []string{"agent.labels"}},
		{"agent label twice", func(c *Config) { c.Agent.Labels = []string{"zone=a", "zone=b"} }, []string{"agent.labels"}},
		{"agent kill grace", func(c *Config) { c.Agent.KillGrace = Duration{-time.Second} }, []string{"agent.kill_grace"}},
		{"client master", func(c *Config) { c.Client.Master = "127.0.0.1:7050" }, []string{"client.master"}},
		{"client master empty", func(c *Config) { c.Client.Master = "" }, []string{"client.master"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c)
			err := c.Validate()
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%v, want api.ErrInvalid", err)
			}
			var got []string
			for _, ke := range KeyErrors(err) {
				got = append(got, ke.Key)
			}
			if diff := cmp.Diff(tc.keys, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
	for _, set := range []func(c *Config){
		func(c *Config) { c.Volumes.DockerHost = "" }, // legacy plugins only
		func(c *Config) { c.GPU.NUMAAffinity = "" },   // the isolator's default
		func(c *Config) { c.Images.MaxSize = 0 },      // no limit
		func(c *Config) { c.Log.Level = " DEBUG " },
		func(c *Config) { c.Security.SeccompAllow = []string{"default"} },
		func(c *Config) { c.Host.Resources, c.Host.Reserve = "cpus:8;mem:16g;ports:[80-89,90]", "cpus:1" },
		func(c *Config) { c.Master.Listen, c.Agent.Listen = "[::1]:0", "10.0.0.1:7051" }, // port 0: any free one
		func(c *Config) {
			c.Agent.Advertise, c.Agent.Labels = "node-1.example:7051", []string{"zone=a", "empty="}
		},
		func(c *Config) { c.Agent.Master, c.Client.Master = "https://master.example", "https://[::1]:7050/" },
		func(c *Config) {
			c.Master.KillGrace, c.Master.Refuse, c.Master.ReclaimGrace, c.Agent.KillGrace = Duration{}, Duration{}, Duration{}, Duration{}
		},
		func(c *Config) {
			c.Master.HeartbeatTimeout, c.Master.AgentLostTimeout = c.Master.HeartbeatInterval, c.Master.HeartbeatInterval
		},
	} {
		c := Default()
		set(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// A fake section for TestValidateSectionErrors, whose Validate returns
// what it is told.
type fakeSection struct{ err error }

func (f fakeSection) Validate() error { return f.err }

// TestValidateSectionErrors: every error a section returns is kept and
// keyed by the section: a *KeyError's key within it after its name, any
// other error (plain, wrapped, joined, not matching api.ErrInvalid) by the
// name alone, and every one matches api.ErrInvalid.
func TestValidateSectionErrors(t *testing.T) {
	plain := errors.New("plain")
	var s struct {
		Fake  fakeSection `toml:"fake"`
		Other fakeSection `toml:"other"`
	}
	s.Fake.err = errors.Join(
		&KeyError{Key: "a", Err: api.ErrInvalid},
		plain,
		errors.Join(fmt.Errorf("wrapped: %w", api.ErrInvalid), &KeyError{Err: api.ErrInvalid}),
	)
	s.Other.err = fmt.Errorf("one alone: %w", api.ErrUnavailable)
	errs := validateSections(s)
	var got []string
	for _, err := range errs {
		var ke *KeyError
		if !errors.As(err, &ke) {
			t.Errorf("%v is no *KeyError", err)
			continue
		}
		got = append(got, ke.Key)
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%v does not match api.ErrInvalid", err)
		}
	}
	if diff := cmp.Diff([]string{"fake.a", "fake", "fake", "fake", "other"}, got); diff != "" {
		t.Fatalf("keys (-want +got):\n%s", diff)
	}
	if !errors.Is(errs[1], plain) || !errors.Is(errs[4], api.ErrUnavailable) {
		t.Errorf("%v, %v: want them to match what the sections returned", errs[1], errs[4])
	}
}

// TestEverySectionValidates: every section of Config has a Validate, so
// that Validate, which finds them by reflection, checks them all.
func TestEverySectionValidates(t *testing.T) {
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "Version" {
			continue
		}
		if !f.Type.Implements(reflect.TypeOf((*validator)(nil)).Elem()) {
			t.Errorf("section %s (%s) has no Validate", tomlKey(f), f.Type)
		}
	}
}

// TestEncodeRoundTrip: a file Encode writes holds every key: read onto
// an empty Config, it gives back what was written.
func TestEncodeRoundTrip(t *testing.T) {
	c := Default()
	c.Images.MaxSize = 3<<30 + 1
	c.CNI.Timeout = Duration{1500 * time.Millisecond}
	c.Host.Resources = `cpus:8;mem:16g;ports:[31000-32000]`
	c.GPU.CDISpec = "/etc/cdi/it's \"quoted\".yaml"
	c.Master.OfferFanout = 4
	c.Agent.Labels = []string{"zone=a", "rack=12"}
	c.Client.TLSCA = "/etc/caisson/ca.pem"
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	var got Config
	if _, err := Decode(b, &got); err != nil {
		t.Fatalf("%v in:\n%s", err, b)
	}
	if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("version = 1\n[log]\nlevel = \"debug\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Check(good)
	if err != nil || c.Log.Level != "debug" {
		t.Errorf("Check(good) = level %q, %v", c.Log.Level, err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("version = 1\n\n[cni]\ntimeout = \"10ms\"\n[gpu]\nbackend = \"cuda\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Check(bad)
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("Check(bad) = %v, want api.ErrInvalid", err)
	}
	if diff := cmp.Diff([]where{{"cni.timeout", 4}, {"gpu.backend", 6}}, wheres(err)); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	for _, ke := range KeyErrors(err) {
		if ke.File != bad {
			t.Errorf("%v: file %q, want %q", ke, ke.File, bad)
		}
	}
	if _, err := Check(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check(missing) = %v, want os.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("version = 1\n"+strings.Repeat("#\n", MaxFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(big); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Check(big) = %v, want api.ErrInvalid", err)
	}
	if _, err := Check(dir); err == nil {
		t.Error("Check(a directory) succeeded")
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		out  string
	}{
		{"32g", 32 << 30, "32g"}, {"0", 0, "0"}, {"1", 1, "1"}, {"1536m", 1536 << 20, "1536m"},
		{"1.5g", 1536 << 20, "1536m"}, {"2048k", 2 << 20, "2m"}, {"1t", 1 << 40, "1t"}, {"1025", 1025, "1025"},
	} {
		var s Size
		if err := s.UnmarshalText([]byte(tc.in)); err != nil || s != tc.want {
			t.Errorf("%q: %d, %v; want %d", tc.in, s, err, tc.want)
		}
		if got := s.String(); got != tc.out {
			t.Errorf("%d written %q, want %q", s, got, tc.out)
		}
	}
	var s Size
	if err := s.UnmarshalText([]byte("-1")); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("-1: %v, want api.ErrInvalid", err)
	}
}

func TestParseLogLevel(t *testing.T) {
	got := map[string]slog.Level{}
	for _, s := range []string{"debug", "info", "warn", "error", " DEBUG "} {
		l, err := ParseLogLevel(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		got[s] = l
	}
	want := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError, " DEBUG ": slog.LevelDebug}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
}

// FuzzParseLogLevel: a level is one of the four names (any case, spaces
// around), and gives that name's level; anything else is refused with
// api.ErrInvalid. The names are written out here, not taken from the code.
func FuzzParseLogLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", " Warn\t", "warn+2", "", "error-1", "4", "bogus", "warning"} {
		f.Add(s)
	}
	names := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLogLevel(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%q: %v, want api.ErrInvalid", s, err)
			}
			for name := range names {
				if strings.EqualFold(strings.TrimSpace(s), name) {
					t.Fatalf("%q: refused (%v), but it is %s", s, err, name)
				}
			}
			return
		}
		for name, want := range names {
			if strings.EqualFold(strings.TrimSpace(s), name) {
				if l != want {
					t.Fatalf("%q: level %v, want %v", s, l, want)
				}
				return
			}
		}
		t.Fatalf("%q: accepted as %v, but it is none of the names", s, l)
	})
}

// FuzzDecode: any input is either refused with api.ErrInvalid, leaving
// the config as it was, or accepted; an accepted config, written and read
// back, is the same.
func FuzzDecode(f *testing.F) {
	def, err := Encode(Default())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(def), "version = 1\n", "version = 1\n[cni]\ntimeout = \"5s\"\n", "version = 2\n", "[cni\n",
		"version = 1\n[images]\nmax_size = \"1.5g\"\n", "version = 1\nx.y.z = 1\n", "version = 1\n[[cni]]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if _, err := Decode(data, &c); err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%v, want api.ErrInvalid", err)
			}
			if diff := cmp.Diff(Default(), c); diff != "" {
				t.Fatalf("refused, yet the config changed (-want +got):\n%s", diff)
			}
			return
		}
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Config
		if _, err := Decode(b, &back); err != nil {
			t.Fatalf("%v reading back:\n%s", err, b)
		}
		if diff := cmp.Diff(c, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("read back (-want +got):\n%s", diff)
		}
	})
}

// The [hooks] section: arrays of [[hooks.exec]] and [[hooks.oci]] tables,
// each element's keys found by its index, and each hook checked, its
// executable included, with the line of the key at fault.
func TestHooksSection(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "hook")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := `version = 1
[[hooks.exec]]
point = "pre-launch"
path = "` + exe + `"
timeout = "5s"
on_failure = "ignore"

[[hooks.exec]]
name = "rack"
point = "agent-register"
path = "` + exe + `"
args = ["--rack"]
max_output = "64k"

[[hooks.oci]]
stage = "poststop"
path = "` + exe + `"
timeout = 3
`
	path := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Hooks{
		Exec: []ExecHook{
			{Point: "pre-launch", Path: exe, Timeout: Duration{5 * time.Second}, OnFailure: "ignore"},
			{Name: "rack", Point: "agent-register", Path: exe, Args: []string{"--rack"}, MaxOutput: 64 << 10},
		},
		OCI: []OCIHook{{Stage: "poststop", Path: exe, Timeout: 3}},
		NRI: Default().Hooks.NRI,
	}
	if diff := cmp.Diff(want, c.Hooks); diff != "" {
		t.Errorf("hooks (-want +got):\n%s", diff)
	}
	ac := c.Hooks.Agenthook()
	if len(ac.Exec) != 2 || ac.Exec[0].Timeout != 5*time.Second || ac.Exec[1].MaxOutput != 64<<10 || ac.OCI[0].Timeout != 3 {
		t.Errorf("as agenthook takes it: %+v", ac)
	}

	bad := `version = 1
[[hooks.exec]]
point = "pre-launch"
path = "` + exe + `"

[[hooks.exec]]
point = "pre-start"
path = "/no/such/hook"
timeout = "1ms"

[[hooks.oci]]
stage = "prestop"
path = "` + exe + `"
`
	path = filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Check(path)
	wantErr := []where{{"hooks.exec[1].point", 7}, {"hooks.exec[1].path", 8}, {"hooks.exec[1].timeout", 9}, {"hooks.oci[0].stage", 12}}
	if diff := cmp.Diff(wantErr, wheres(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s\n%v", diff, err)
	}
	for _, s := range []string{"unknown hook point", "no such file", "want 100ms to 10m0s", "unknown OCI hook stage"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the errors do not say %q:\n%v", s, err)
		}
	}
}
