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
// a command that does not use them (sim here), and that the error names
// the setting by its flag and environment variable.
func TestGlobalSettings(t *testing.T) {
	sim := []string{"sim", "../../examples/sim-small.yaml", "--format", "json"}
	for _, tc := range []struct {
		name    string
		args    []string
		environ map[string]string
		// the setting the error names: its flag and environment variable
		flag, env string
	}{
		{"log level bogus", []string{"--log-level", "bogus"}, nil, "--log-level", "CAISSON_LOG_LEVEL"},
		{"log level empty", []string{"--log-level", ""}, nil, "--log-level", "CAISSON_LOG_LEVEL"},
		{"log level slog offset", []string{"--log-level", "warn+2"}, nil, "--log-level", "CAISSON_LOG_LEVEL"},
		{"log level number", []string{"--log-level", "4"}, nil, "--log-level", "CAISSON_LOG_LEVEL"},
		{"log level from env", nil, map[string]string{"CAISSON_LOG_LEVEL": "verbose"}, "--log-level", "CAISSON_LOG_LEVEL"},
		{"runtime timeout", []string{"--runtime-timeout", "1ms"}, nil, "--runtime-timeout", ""},
		{"cni timeout", []string{"--cni-timeout", "-1s"}, nil, "--cni-timeout", ""},
		{"resources empty items", []string{"--resources", ";;;"}, nil, "--resources", "CAISSON_RESOURCES"},
		{"resources trailing", []string{"--resources", "cpus:8;"}, nil, "--resources", "CAISSON_RESOURCES"},
		{"resources garbage", []string{"--resources", "cpus:8;garbage"}, nil, "--resources", "CAISSON_RESOURCES"},
		{"resources overlap", []string{"--resources", "ports:[31000-32000,31500]"}, nil, "--resources", "CAISSON_RESOURCES"},
		{"resources from env", nil, map[string]string{"CAISSON_RESOURCES": ";"}, "--resources", "CAISSON_RESOURCES"},
		{"reserve empty items", []string{"--reserve", "cpus:1;;mem:1g"}, nil, "--reserve", "CAISSON_RESERVE"},
		{"reserve overlap", []string{"--reserve", "ports:[80,80]"}, nil, "--reserve", "CAISSON_RESERVE"},
		{"reserve gpus", []string{"--reserve", "gpus:0"}, nil, "--reserve", "CAISSON_RESERVE"},
		{"reserve from env", nil, map[string]string{"CAISSON_RESERVE": "bogus"}, "--reserve", "CAISSON_RESERVE"},
		{"gpu backend", []string{"--gpu-backend", "mock:dgx-z"}, nil, "--gpu-backend", "CAISSON_GPU_BACKEND"},
		{"gpu backend from env", nil, map[string]string{"CAISSON_GPU_BACKEND": "cuda"}, "--gpu-backend", "CAISSON_GPU_BACKEND"},
		{"gpu numa affinity", []string{"--gpu-numa-affinity", "strict"}, nil, "--gpu-numa-affinity", "CAISSON_GPU_NUMA_AFFINITY"},
		{"seccomp allow unknown", []string{"--seccomp-allow", "default,none"}, nil, "--seccomp-allow", "CAISSON_SECCOMP_ALLOW"},
		{"seccomp allow empty", []string{"--seccomp-allow", ""}, nil, "--seccomp-allow", "CAISSON_SECCOMP_ALLOW"},
		{"seccomp allow from env", nil, map[string]string{"CAISSON_SECCOMP_ALLOW": "builtin"}, "--seccomp-allow", "CAISSON_SECCOMP_ALLOW"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.environ {
				t.Setenv(k, v)
			}
			out, err := runCaisson(t, append(tc.args, sim...)...)
			if !errors.Is(err, api.ErrInvalid) || exitCode(err) != exitCaissonError {
				t.Errorf("%v: %v, want an invalid-input error (exit 125)", tc.args, err)
			}
			var se *settingError
			if !errors.As(err, &se) {
				t.Fatalf("%v: %v, want a *settingError", tc.args, err)
			}
			if diff := cmp.Diff([2]string{tc.flag, tc.env}, [2]string{se.flag, se.env}); diff != "" {
				t.Errorf("setting named (-want +got):\n%s", diff)
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

// FuzzParseLogLevel: a level is one of the four names (any case, spaces
// around), and gives that name's level; anything else is refused with
// api.ErrInvalid. The names are written out here, not taken from the code.
func FuzzParseLogLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", " Warn\t", "warn+2", "", "error-1", "4", "bogus", "warning"} {
		f.Add(s)
	}
	names := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseLogLevel(s)
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
