package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

const denyMkdirProfile = `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`

func TestParseSecurityOpts(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "deny-mkdir.json")
	if err := os.WriteFile(profile, []byte(denyMkdirProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(profile, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct {
		name string
		opts []string
		want api.Seccomp
	}{
		{"none", nil, api.Seccomp{}},
		{"unconfined", []string{"seccomp=unconfined"}, api.Seccomp{Profile: api.SeccompUnconfined}},
		{"builtin", []string{"seccomp=builtin"}, api.Seccomp{Profile: api.SeccompDefault}},
		{"file", []string{"seccomp=" + profile}, api.CustomSeccomp(profile, []byte(denyMkdirProfile))},
		{"relative file", []string{"seccomp=deny-mkdir.json"}, api.CustomSeccomp(profile, []byte(denyMkdirProfile))},
		{"symlink to a file", []string{"seccomp=" + link}, api.CustomSeccomp(link, []byte(denyMkdirProfile))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSecurityOpts(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSecurityOptsErrors(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	fifoLink, devLink := filepath.Join(dir, "fifo-link.json"), filepath.Join(dir, "dev-link.json")
	if err := os.Symlink(fifo, fifoLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", devLink); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(dir, "large.json")
	if err := os.WriteFile(large, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(large, api.MaxSeccompProfileBytes+1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []string
		want error
	}{
		{"apparmor", []string{"apparmor=unconfined"}, api.ErrInvalid},
		{"label", []string{"label=disable"}, api.ErrInvalid},
		{"no-new-privileges", []string{"no-new-privileges"}, api.ErrInvalid},
		{"no-new-privileges=false", []string{"no-new-privileges=false"}, api.ErrInvalid},
		{"seccomp without value", []string{"seccomp"}, api.ErrInvalid},
		{"seccomp with empty value", []string{"seccomp="}, api.ErrInvalid},
		{"Docker's old colon form", []string{"seccomp:unconfined"}, api.ErrInvalid},
		{"seccomp twice", []string{"seccomp=unconfined", "seccomp=builtin"}, api.ErrInvalid},
		{"missing file", []string{"seccomp=" + filepath.Join(dir, "nope.json")}, fs.ErrNotExist},
		{"directory", []string{"seccomp=" + dir}, api.ErrInvalid},
		{"FIFO", []string{"seccomp=" + fifo}, api.ErrInvalid},
		{"character device", []string{"seccomp=/dev/zero"}, api.ErrInvalid},
		{"too large", []string{"seccomp=" + large}, api.ErrTooLarge},
		{"symlink to a FIFO", []string{"seccomp=" + fifoLink}, api.ErrInvalid},
		{"symlink to a device", []string{"seccomp=" + devLink}, api.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseSecurityOpts(tc.opts); !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			}
		})
	}
}
