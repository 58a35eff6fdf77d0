// Command seccompprobe makes the system calls named on its command line
// inside a container and prints one line per call, "NAME=ok" or
// "NAME=ERRNO" (EPERM, ENOSYS, ...), and "seccomp=MODE" with the Seccomp
// field of /proc/self/status. The e2e tests build it statically and copy it
// into the container's root filesystem.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// addrNoRandomize is ADDR_NO_RANDOMIZE of <linux/personality.h>, a
// personality Docker's profile refuses (it turns off ASLR).
const addrNoRandomize = 0x0040000

var probes = map[string]func() error{
	// A key in the process keyring only: nothing outlives the probe.
	"add_key": func() error {
		_, err := unix.AddKey("user", "caisson-seccomp-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	},
	// Reads the user keyring's ID without creating it.
	"keyctl": func() error {
		_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_USER_KEYRING, 0, 0, 0)
		return err
	},
	// Go's threads make the call itself fail with EINVAL where seccomp
	// lets it through; userns-mount makes it from a single-threaded child.
	"unshare": func() error { return unix.Unshare(unix.CLONE_NEWUSER) },
	// A child unshares a user and a mount namespace (in the forked,
	// single-threaded child, before exec), maps itself to root there, and
	// mounts a tmpfs, as root of that namespace.
	"userns-mount": func() error {
		cmd := exec.Command("/proc/self/exe", "mount")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Unshareflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			UidMappings:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		var ee *exec.ExitError
		if err := cmd.Run(); errors.As(err, &ee) {
			return unix.Errno(ee.ExitCode())
		} else if err != nil {
			return err
		}
		return nil
	},
	"mount": func() error {
		return unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m")
	},
	"perf_event_open": func() error {
		attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
		fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err == nil {
			unix.Close(fd)
		}
		return err
	},
	"personality": func() error {
		if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, addrNoRandomize, 0, 0); errno != 0 {
			return errno
		}
		return nil
	},
	"mkdir": func() error {
		err := os.Mkdir("/tmp/caisson-seccomp-probe", 0o755)
		if err == nil {
			err = os.Remove("/tmp/caisson-seccomp-probe")
		}
		return err
	},
}

func main() {
	// The child of userns-mount reports its mount's errno as exit status.
	if len(os.Args) == 2 && os.Args[1] == "mount" {
		var errno unix.Errno
		if errors.As(probes["mount"](), &errno) {
			os.Exit(int(errno))
		}
		os.Exit(0)
	}
	for _, name := range os.Args[1:] {
		if name == "seccomp" {
			fmt.Printf("seccomp=%s\n", seccompMode())
			continue
		}
		probe, ok := probes[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown probe %q\n", name)
			os.Exit(2)
		}
		result := "ok"
		var errno unix.Errno
		if err := probe(); errors.As(err, &errno) {
			result = unix.ErrnoName(errno)
		} else if err != nil {
			result = err.Error()
		}
		fmt.Printf("%s=%s\n", name, result)
	}
}

func seccompMode() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Seccomp:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "missing"
}
