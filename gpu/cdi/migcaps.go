package cdi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// A MIG device is reached through its GPU's node (/dev/nvidia<minor>) and
// two capability nodes of the nvidia-caps driver: the access capability of
// its GPU instance and that of its compute instance. The driver lists every
// capability with the minor of its node, /dev/nvidia-caps/nvidia-cap<minor>,
// in /proc/driver/nvidia-caps/mig-minors:
//
//	config 1
//	monitor 2
//	gpu0/gi0/access 3
//	gpu0/gi0/ci0/access 4
//	…
//	gpu0/gi1/access 12
//	gpu0/gi1/ci0/access 13
//
// gpu<N> is the GPU's minor number (of /dev/nvidia<N>), not its index. The
// config capability lets its holder create and destroy instances, monitor
// lets it watch every instance: neither is ever given to a container.

// MIGMinorsFile is where the driver lists the MIG capabilities, under the
// proc root; a simulated machine has a file of the same form in its
// directory.
const MIGMinorsFile = "driver/nvidia-caps/mig-minors"

// The capabilities that no container gets.
const (
	CapConfig  = "config"
	CapMonitor = "monitor"
)

// capsDir is the directory of the capability nodes under the device root.
const capsDir = "nvidia-caps"

// MIGMinors maps each MIG capability of mig-minors ("config",
// "gpu0/gi1/access", "gpu0/gi1/ci0/access") to the minor of its node.
type MIGMinors map[string]int

// GIAccess is the access capability of GPU instance gi of the GPU whose
// minor number is gpuMinor.
func GIAccess(gpuMinor, gi int) string { return fmt.Sprintf("gpu%d/gi%d/access", gpuMinor, gi) }

// CIAccess is the access capability of compute instance ci of GPU instance
// gi of the GPU whose minor number is gpuMinor.
func CIAccess(gpuMinor, gi, ci int) string {
	return fmt.Sprintf("gpu%d/gi%d/ci%d/access", gpuMinor, gi, ci)
}

// ReadMIGMinors reads a mig-minors file. A file that does not exist (no MIG
// on this host, or the nvidia-caps module not loaded) gives no capabilities
// and no error. A line that is not "<capability> <minor>", a capability of
// another form than the driver's, or a capability or minor listed twice is
// an error wrapping api.ErrInvalid that names the file and the line.
func ReadMIGMinors(path string) (MIGMinors, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read MIG capabilities: %w", err)
	}
	caps, err := parseMIGMinors(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return caps, nil
}

// maxCapMinor is the largest minor a device number can hold (20 bits).
const maxCapMinor = 1<<20 - 1

func parseMIGMinors(data []byte) (MIGMinors, error) {
	caps := MIGMinors{}
	byMinor := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d %q is not \"<capability> <minor>\": %w", n, line, api.ErrInvalid)
		}
		if !validCap(f[0]) {
			return nil, fmt.Errorf("line %d %q: %q is not a MIG capability (config, monitor, gpu<N>/gi<N>/access or gpu<N>/gi<N>/ci<N>/access): %w",
				n, line, f[0], api.ErrInvalid)
		}
		minor, ok := decimal(f[1])
		if !ok || minor > maxCapMinor {
			return nil, fmt.Errorf("line %d %q: minor %q is not a number 0-%d: %w", n, line, f[1], maxCapMinor, api.ErrInvalid)
		}
		if _, dup := caps[f[0]]; dup {
			return nil, fmt.Errorf("line %d %q: capability %s is listed twice: %w", n, line, f[0], api.ErrInvalid)
		}
		if other, dup := byMinor[minor]; dup {
			return nil, fmt.Errorf("line %d %q: minor %d is also %s's: %w", n, line, minor, other, api.ErrInvalid)
		}
		caps[f[0]] = minor
		byMinor[minor] = f[0]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w: %w", n+1, err, api.ErrInvalid)
	}
	return caps, nil
}

// validCap: config, monitor, gpu<N>/gi<N>/access or gpu<N>/gi<N>/ci<N>/access.
func validCap(c string) bool {
	if c == CapConfig || c == CapMonitor {
		return true
	}
	parts := strings.Split(c, "/")
	if (len(parts) != 3 && len(parts) != 4) || parts[len(parts)-1] != "access" {
		return false
	}
	for i, prefix := range []string{"gpu", "gi", "ci"}[:len(parts)-1] {
		num, ok := strings.CutPrefix(parts[i], prefix)
		if _, isNum := decimal(num); !ok || !isNum {
			return false
		}
	}
	return true
}

// decimal parses a number written as the kernel writes it: digits, no
// sign, no leading zero.
func decimal(s string) (int, bool) {
	if s == "" || len(s) > 9 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := range len(s) {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// What the driver numbers: per GPU, 15 GPU instances (gi0–gi14) of 8
// compute instances each (ci0–ci7), after config (1) and monitor (2).
const (
	capsGIs = 15
	capsCIs = 8
)

// SimulatedMIGMinors is a mig-minors file as the driver writes it, for the
// GPUs of minors 0 to gpus-1: config 1, monitor 2, then for each GPU each
// GPU instance's access capability followed by those of its compute
// instances (gpu0/gi0/access 3, gpu0/gi0/ci0/access 4, …, gpu1/gi0/access
// 138).
func SimulatedMIGMinors(gpus int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s 1\n%s 2\n", CapConfig, CapMonitor)
	minor := 3
	for g := range gpus {
		for gi := range capsGIs {
			fmt.Fprintf(&b, "%s %d\n", GIAccess(g, gi), minor)
			minor++
			for ci := range capsCIs {
				fmt.Fprintf(&b, "%s %d\n", CIAccess(g, gi, ci), minor)
				minor++
			}
		}
	}
	return b.Bytes()
}
