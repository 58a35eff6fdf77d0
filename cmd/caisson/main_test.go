package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// TestGlobalSettings checks that every command refuses bad global
// settings, from flags or the environment, before it does anything, even
// a command that does not use them (sim here).
func TestGlobalSettings(t *testing.T) {
	sim := []string{"sim", "../../examples/sim-small.yaml", "--format", "json"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "log level bogus", args: []string{"--log-level", "bogus"}},
		{name: "log level empty", args: []string{"--log-level", ""}},
		{name: "log level slog offset", args: []string{"--log-level", "warn+2"}},
		{name: "log level number", args: []string{"--log-level", "4"}},
		{name: "log level from env", env: map[string]string{"CAISSON_LOG_LEVEL": "verbose"}},
		{name: "resources empty items", args: []string{"--resources", ";;;"}},
		{name: "resources trailing", args: []string{"--resources", "cpus:8;"}},
		{name: "resources garbage", args: []string{"--resources", "cpus:8;garbage"}},
		{name: "resources overlap", args: []string{"--resources", "ports:[31000-32000,31500]"}},
		{name: "resources from env", env: map[string]string{"CAISSON_RESOURCES": ";"}},
		{name: "reserve empty items", args: []string{"--reserve", "cpus:1;;mem:1g"}},
		{name: "reserve overlap", args: []string{"--reserve", "ports:[80,80]"}},
		{name: "reserve gpus", args: []string{"--reserve", "gpus:0"}},
		{name: "reserve from env", env: map[string]string{"CAISSON_RESERVE": "bogus"}},
		{name: "gpu backend", args: []string{"--gpu-backend", "mock:dgx-z"}},
		{name: "gpu backend from env", env: map[string]string{"CAISSON_GPU_BACKEND": "cuda"}},
		{name: "gpu numa affinity", args: []string{"--gpu-numa-affinity", "strict"}},
		{name: "seccomp allow unknown", args: []string{"--seccomp-allow", "default,none"}},
		{name: "seccomp allow empty", args: []string{"--seccomp-allow", ""}},
		{name: "seccomp allow from env", env: map[string]string{"CAISSON_SECCOMP_ALLOW": "builtin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, err := runCaisson(t, append(tc.args, sim...)...)
			if !errors.Is(err, api.ErrInvalid) || exitCode(err) != exitCaissonError {
				t.Errorf("%v: %v, want an invalid-input error (exit 125)", tc.args, err)
			}
			if out != "" {
				t.Errorf("the command ran:\n%s", out)
			}
		})
	}
	for _, args := range [][]string{
		{"--log-level", "debug"}, {"--log-level", "INFO"}, {"--log-level", "Warn"}, {"--log-level", "error"},
		{"--resources", "cpus:8;mem:16g;ports:[80-89,90]", "--reserve", "cpus:1"}, {"--resources", ""},
		{"--gpu-backend", "mock:dgxa100", "--gpu-numa-affinity", "none"},
		{"--seccomp-allow", "default"}, {"--seccomp-allow", "unconfined,custom,default"},
	} {
		if _, err := runCaisson(t, append(args, sim...)...); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestParseLogLevel(t *testing.T) {
	got := map[string]slog.Level{}
	for _, s := range []string{"debug", "info", "warn", "error", " DEBUG "} {
		l, err := parseLogLevel(s)
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

// FuzzParseLogLevel: a level is one of the four names, or refused with
// api.ErrInvalid.
func FuzzParseLogLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", "warn+2", "", "error-1", "4", "bogus"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseLogLevel(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%q: %v, want api.ErrInvalid", s, err)
			}
			return
		}
		if want, ok := logLevels[strings.ToLower(strings.TrimSpace(s))]; !ok || want != l {
			t.Fatalf("%q: level %v, not one of the names", s, l)
		}
	})
}

func TestErrorLine(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("one"), "one"},
		{errors.Join(errors.New("a"), errors.New("b")), "a; b"},
		{fmt.Errorf("x: %w", errors.New("line 1\n  line 2\n")), "x: line 1; line 2"},
	} {
		if got := errorLine(tc.err); got != tc.want {
			t.Errorf("errorLine(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
