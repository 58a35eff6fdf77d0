package main

import (
	"errors"
	"testing"

	"github.com/caisson/caisson/api"
)

// TestRunFlagsRefused checks that run refuses flags that hold nothing or do
// not go together, before it does anything.
func TestRunFlagsRefused(t *testing.T) {
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

func TestMaxImageSize(t *testing.T) {
	for in, want := range map[string]int64{"32g": 32 << 30, "0": -1, "512m": 512 << 20, "1": 1} {
		f := &runFlags{maxImageSize: in}
		if got, err := f.imageSizeLimit(); err != nil || got != want {
			t.Errorf("--max-image-size %s: %d, %v; want %d", in, got, err, want)
		}
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }
