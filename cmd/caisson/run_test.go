package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
	"github.com/caisson/caisson/containerizer/image"
)

// TestRunFlagsRefused checks that run refuses flags that hold nothing or do
// not go together, before it does anything.
func TestRunFlagsRefused(t *testing.T) {
	clearSettingsEnv(t)
	tests := []struct {
		name string
		args []string
	}{
		{"empty --rootfs", []string{"--rootfs", "", "true"}},
		{"empty --rootfs=", []string{"--rootfs=", "true"}},
		{"empty --workdir", []string{"--workdir", "", "--no-image", "true"}},
		{"empty -w", []string{"-w", "", "--no-image", "true"}},
		{"empty --platform", []string{"--platform", "", "img"}},
		{"--platform with --rootfs", []string{"--platform", "linux/amd64", "--rootfs", "/tmp", "true"}},
		{"--platform with --no-image", []string{"--platform", "linux/arm64", "--no-image", "true"}},
		{"--rootfs with --no-image", []string{"--rootfs", "/tmp", "--no-image", "true"}},
		{"negative --max-image-size", []string{"--max-image-size", "-1g", "img"}},
		{"bad --max-image-size", []string{"--max-image-size", "lots", "img"}},
		{"empty --max-image-size", []string{"--max-image-size", "", "img"}},
		{"--max-image-size with --rootfs", []string{"--max-image-size", "1g", "--rootfs", "/tmp", "true"}},
		{"--max-image-size with --no-image", []string{"--max-image-size", "0", "--no-image", "true"}},
		// Given empty, each would read as not given.
		{"empty --shm-size", []string{"--shm-size", "", "img"}},
		{"empty --name", []string{"--name", "", "img"}},
		{"empty --user", []string{"-u", "", "img"}},
		{"empty --hostname", []string{"--hostname=", "img"}},
		{"empty --cpus", []string{"--cpus", "", "img"}},
		{"empty --memory", []string{"-m", "", "img"}},
		{"empty --memory-reservation", []string{"--memory-reservation", "", "img"}},
		{"empty --ingress-rate", []string{"--ingress-rate", "", "img"}},
		{"empty --egress-burst", []string{"--egress-rate", "1mbit", "--egress-burst", "", "img"}},
		{"empty --gpus", []string{"--gpus", "", "img"}},
		{"empty --env", []string{"-e", "A=1", "-e", "", "img"}},
		{"empty --label", []string{"-l", "", "img"}},
		{"empty --network", []string{"--network", "", "img"}},
		{"empty --publish", []string{"-p", "", "img"}},
		{"empty --mount", []string{"--mount", "", "img"}},
		{"empty --volume", []string{"-v", "", "img"}},
		{"empty --security-opt", []string{"--security-opt", "", "img"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The root is unusable: a run that got past the flags would fail
			// differently, not with ErrInvalid.
			root := newRootCmd()
			root.SetArgs(append([]string{"--root", "/dev/null/x", "--run-root", "/dev/null/y", "run"}, tt.args...))
			root.SetOut(&discard{})
			root.SetErr(&discard{})
			if err := root.Execute(); !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("run %v: got %v, want an error wrapping api.ErrInvalid", tt.args, err)
			}
		})
	}
}

// TestRunEmptyFlagsOfOtherCommands: every other command refuses empty
// values of its own flags as run does.
func TestRunEmptyFlagsOfOtherCommands(t *testing.T) {
	clearSettingsEnv(t)
	for _, args := range [][]string{
		{"update", "--cpus", "", "-m", "512m", "web"},
		{"update", "--memory-reservation=", "--pids-limit", "5", "web"},
		{"sim", "../../examples/sim-small.yaml", "--plot", ""},
		{"sim", "../../examples/sim-small.yaml", "--cpuprofile", ""},
		{"sim", "--trace", ""},
		{"network", "create", "--subnet", "", "net1"},
		{"network", "create", "--subnet", "10.231.7.0/24", "--bridge", "", "net1"},
		{"network", "create", "--subnet", "10.231.7.0/24", "--dns", "", "net1"},
		{"volume-plugin", "--name", "v", "--root", ""},
		{"volume-plugin", "--name", "v", "--bind-allow", ""},
		{"ps", "--format", ""},
		{"kill", "-s", "", "web"},
		{"image", "ls", "--format", ""},
		{"gpu", "simulate", "0", "--fault", ""},
	} {
		root := newRootCmd()
		root.SetArgs(append([]string{"--root", "/dev/null/x", "--run-root", "/dev/null/y"}, args...))
		root.SetOut(&discard{})
		root.SetErr(&discard{})
		if err := root.Execute(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%v: got %v, want an error wrapping api.ErrInvalid", args, err)
		}
	}
}

// TestRunSpecFromFlags checks the spec run makes of flags whose empty or
// absent values mean something.
func TestRunSpecFromFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want api.ContainerSpec
	}{
		{"no --entrypoint", nil, []string{"img", "a"},
			api.ContainerSpec{Image: "img", Command: []string{"a"}}},
		{"--entrypoint", nil, []string{"--entrypoint", "/bin/sh", "img", "a"},
			api.ContainerSpec{Image: "img", Entrypoint: []string{"/bin/sh"}, Command: []string{"a"}}},
		{"empty --entrypoint clears the image's", nil, []string{"--entrypoint", "", "img", "a"},
			api.ContainerSpec{Image: "img", Entrypoint: []string{}, Command: []string{"a"}}},
		{"CAISSON_MAX_IMAGE_SIZE with --rootfs is the host's setting, ignored", map[string]string{"CAISSON_MAX_IMAGE_SIZE": "1g"},
			[]string{"--rootfs", "/srv/r", "true"}, api.ContainerSpec{Rootfs: "/srv/r", Command: []string{"true"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := &runFlags{}
			cmd := runCmd(&globals{}, f)
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := f.check(cmd); err != nil {
				t.Fatal(err)
			}
			got, err := f.spec(&globals{}, cmd.Flags().Args())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMaxImageSize: images.max_size defaults to the image store's limit,
// and 0, no limit, reaches the store as a negative limit.
func TestMaxImageSize(t *testing.T) {
	if got := config.Default().Images.MaxSize; int64(got) != image.DefaultMaxImageSize {
		t.Errorf("images.max_size defaults to %s, want the image store's default, %d", got, image.DefaultMaxImageSize)
	}
	for in, want := range map[config.Size]int64{32 << 30: 32 << 30, 0: -1, 512 << 20: 512 << 20, 1: 1} {
		if got := imageSizeLimit(in); got != want {
			t.Errorf("images.max_size %s: %d, want %d", in, got, want)
		}
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }
