package containerizer

import (
	"os"
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
		}
	}
	os.Exit(m.Run())
}
