package containerizer

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

// TestMain lets this test binary play the processes the fakes need: a
// container's monitor and its init (see fakes_test.go).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-fake-monitor":
			os.Exit(fakeMonitorMain(os.Args[2:]))
		case "-fake-init":
			os.Exit(fakeInitMain(os.Args[2:]))
		case "-self-exec-probe":
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

var (
	selfExecOnce sync.Once
	selfExecErr  error
)

// requireSelfExec skips t where this test binary cannot run itself, which
// the fakes need (the monitor and the containers' inits are its own
// processes): under qemu-user without binfmt_misc, as the ppc64le run of
// the pure tests is, exec of a foreign binary fails with ENOEXEC.
func requireSelfExec(t *testing.T) {
	t.Helper()
	selfExecOnce.Do(func() { selfExecErr = exec.Command(testBinary(), "-self-exec-probe").Run() })
	if selfExecErr != nil {
		t.Skipf("this test binary cannot run itself here (%v): the fakes' processes are its own", selfExecErr)
	}
}
