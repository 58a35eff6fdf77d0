//go:build linux

package testutil

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WaitForLockWaiter returns once process pid is blocked waiting for a lock
// on the file at path, as the kernel lists it in /proc/locks (a line with
// "->"), so that a test acts on a waiter only once it really waits. It
// fails the test when the process exits first, or when that does not
// happen within a minute: the process went another way.
func WaitForLockWaiter(t testing.TB, pid int, path string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("lock file: %v", err)
	}
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	deadline := time.Now().Add(time.Minute)
	for {
		data, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			// "1: -> FLOCK  ADVISORY  WRITE 1234 00:2e:5678 0 EOF"
			f := strings.Fields(line)
			if len(f) >= 7 && f[1] == "->" && f[5] == strconv.Itoa(pid) && f[6] == file {
				return
			}
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			t.Fatalf("process %d exited before it waited for a lock on %s", pid, path)
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not wait for a lock on %s", pid, path)
		}
		time.Sleep(2 * time.Millisecond) // polls a condition; the kernel has no notification for it
	}
}
