// Package testutil holds helpers shared by the tests: privilege gates and a
// busybox root filesystem built from the host's busybox-static.
package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequiresRoot skips the test when not running as root. In CI (CI=true) the
// tests run as root, so a skip there is turned into a failure: privileged
// tests must not silently disappear.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if Pure() {
		t.Skip("privileged test: CAISSON_TEST_PURE=1 runs only the pure-Go tests (as under qemu-user)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root")
	}
}

// Pure reports whether only pure-Go tests should run (CAISSON_TEST_PURE=1),
// as when the tests of another architecture run under qemu-user, where no
// container can be started.
func Pure() bool { return os.Getenv("CAISSON_TEST_PURE") == "1" }

// RequiresLinux skips the test on other systems.
func RequiresLinux(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs linux")
	}
}

// LookPath returns the path of a required binary, failing the test when it is
// missing (make test installs every binary the tests use).
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" || os.Geteuid() == 0 {
			t.Fatalf("%s is not installed (make test installs it): %v", name, err)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// BusyboxApplets are the commands the test root filesystem links to busybox.
var BusyboxApplets = []string{
	"sh", "true", "false", "echo", "cat", "sleep", "ls", "id", "env", "pwd", "hostname",
	"head", "tail", "dd", "ps", "kill", "mkdir", "touch", "rm", "grep", "wc", "yes", "stat",
	"readlink", "test", "[", "printf", "mount", "ip", "httpd", "wget", "nc", "seq", "tr", "mknod", "tee",
}

// BusyboxRootfs makes a minimal root filesystem in a new temporary directory:
// /bin/busybox (the host's static busybox) with applet links, /etc/passwd and
// /etc/group with root, nobody and a user "app" (1000:1000), /tmp and /root.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	MakeBusyboxRootfs(t, dir)
	return dir
}

// MakeBusyboxRootfs makes the BusyboxRootfs tree at dir.
func MakeBusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	bb := LookPath(t, "busybox")
	if resolved, err := filepath.EvalSymlinks(bb); err == nil {
		bb = resolved
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc", "tmp", "root", "proc", "sys", "dev", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range BusyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "home/app"), 1000, 1000); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
}

// FIFO makes a FIFO in dir and writes content to it in the background:
// once, or with forever over and over until its reader goes away. The test
// reads it by path; its cleanup ends the writer even if nothing read.
func FIFO(t testing.TB, dir, content string, forever bool) string {
	t.Helper()
	p := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if forever && content != "" {
		content = strings.Repeat(content, 1+64<<10/len(content)) // fewer writes
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for {
			// A write fails with EPIPE once the reader has gone.
			if _, err := f.WriteString(content); err != nil || !forever {
				return
			}
		}
	}()
	t.Cleanup(func() {
		// A reader of our own lets a writer still waiting in open through;
		// closing it ends the writes.
		if r, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		<-done
	})
	return p
}

// Socket makes a unix socket at path that stays there, listening, until
// the test ends.
func Socket(t testing.TB, path string) string {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	t.Cleanup(func() { l.Close() })
	return path
}
