package cdi

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// Majors are the character-device major numbers of the NVIDIA driver's
// nodes, 0 when the driver (or that module of it) is not loaded.
type Majors struct {
	// GPU is the major of /dev/nvidia<N>, /dev/nvidiactl and
	// /dev/nvidia-modeset: "nvidia-frontend" in /proc/devices before driver
	// 550.40, "nvidia" since. NVIDIA's registered major is 195.
	GPU int
	// UVM is the dynamic major of /dev/nvidia-uvm and /dev/nvidia-uvm-tools
	// ("nvidia-uvm").
	UVM int
	// Caps is the dynamic major of /dev/nvidia-caps/nvidia-cap<N>
	// ("nvidia-caps").
	Caps int
}

// Major numbers with a meaning of their own.
const (
	// NVIDIAMajor is the major registered to NVIDIA (Linux
	// Documentation/admin-guide/devices.txt), which simulated GPUs use.
	NVIDIAMajor = 195
	// localMajorFirst and localMajorLast bound the character majors that
	// devices.txt reserves for local or experimental use.
	localMajorFirst = 240
	localMajorLast  = 254
	// maxMajor is the largest major the kernel can represent (12 bits).
	maxMajor = 4095
)

// charDevice is one line of the "Character devices:" section.
type charDevice struct {
	major int
	name  string
}

// ReadMajors reads the NVIDIA majors from /proc/devices (the path is given
// so that tests and other roots can point elsewhere). Only the character
// section counts. A driver that is not loaded gives zero majors and no
// error; a line that is not "<major> <name>" is an error wrapping
// api.ErrInvalid that names it.
func ReadMajors(procDevices string) (Majors, error) {
	devs, err := readCharDevices(procDevices)
	if err != nil {
		return Majors{}, err
	}
	return majorsOf(devs), nil
}

// SimulatedMajors returns the majors for simulated GPUs' fake nodes:
// NVIDIAMajor for the GPUs and control nodes, and for nvidia-uvm and
// nvidia-caps (MIG capabilities) the first two majors reserved for local use
// (240–254) that /proc/devices does not list for a character device, so
// that the fake nodes can never reach a real driver through those majors.
// When fewer than two local majors are free the error wraps
// api.ErrUnavailable.
//
// 195 is used even if a real NVIDIA driver is loaded: fake nodes then reach
// the real GPUs of the same minors, which only a test machine should have.
func SimulatedMajors(procDevices string) (Majors, error) {
	devs, err := readCharDevices(procDevices)
	if err != nil {
		return Majors{}, err
	}
	if m, ok := simulatedMajors(devs); ok {
		return m, nil
	}
	return Majors{}, fmt.Errorf("%s: fewer than two local character majors %d-%d are free, none for a simulated nvidia-uvm and nvidia-caps: %w",
		procDevices, localMajorFirst, localMajorLast, api.ErrUnavailable)
}

func simulatedMajors(devs []charDevice) (Majors, bool) {
	used := make(map[int]bool, len(devs))
	for _, d := range devs {
		used[d.major] = true
	}
	var free []int
	for m := localMajorFirst; m <= localMajorLast && len(free) < 2; m++ {
		if !used[m] {
			free = append(free, m)
		}
	}
	if len(free) < 2 {
		return Majors{}, false
	}
	return Majors{GPU: NVIDIAMajor, UVM: free[0], Caps: free[1]}, true
}

func readCharDevices(procDevices string) ([]charDevice, error) {
	data, err := os.ReadFile(procDevices)
	if err != nil {
		return nil, fmt.Errorf("read device majors: %w", err)
	}
	devs, err := parseCharDevices(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", procDevices, err)
	}
	return devs, nil
}

func majorsOf(devs []charDevice) Majors {
	var m Majors
	frontend := 0
	for _, d := range devs {
		switch d.name {
		case "nvidia":
			m.GPU = d.major
		case "nvidia-frontend":
			frontend = d.major
		case "nvidia-uvm":
			m.UVM = d.major
		case "nvidia-caps":
			m.Caps = d.major
		}
	}
	if m.GPU == 0 {
		m.GPU = frontend
	}
	return m
}

// parseCharDevices parses /proc/devices: section headers ("Character
// devices:", "Block devices:") followed by "<major> <name>" lines, with
// blank lines between sections. It returns the character devices.
func parseCharDevices(data []byte) ([]charDevice, error) {
	var (
		devs    []charDevice
		section string
		n       int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasSuffix(line, ":") && !isDigit(line[0]) {
			section = strings.TrimSuffix(line, ":")
			continue
		}
		num, name, ok := strings.Cut(line, " ")
		name = strings.TrimSpace(name)
		if !ok || name == "" || section == "" {
			return nil, fmt.Errorf("line %d %q is not \"<major> <name>\" in a section: %w", n, line, api.ErrInvalid)
		}
		major, err := strconv.Atoi(num)
		if err != nil || major < 0 || major > maxMajor {
			return nil, fmt.Errorf("line %d %q: major %q is not a number 0-%d: %w", n, line, num, maxMajor, api.ErrInvalid)
		}
		if section == "Character devices" {
			devs = append(devs, charDevice{major: major, name: name})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w: %w", n+1, err, api.ErrInvalid)
	}
	return devs, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
