// Package procfs finds NVIDIA GPUs without NVML, from what the kernel
// driver publishes under /proc/driver/nvidia: the fallback when
// libnvidia-ml cannot be loaded (no user-space driver, a minimal host
// image). It knows each GPU's model, UUID, device minor and PCI address, and
// its NUMA node from sysfs; not its memory, topology or health.
package procfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/resources"
)

// Driver is what /proc/driver/nvidia says.
type Driver struct {
	// Version is the kernel module's version ("550.54.15"), empty when
	// /proc/driver/nvidia/version does not say.
	Version string
	GPUs    []api.GPU
}

// Read reads <procFS>/driver/nvidia and <sysFS>/bus/pci/devices. No driver
// directory is an error wrapping api.ErrNotFound; a GPU whose information
// file cannot be parsed is an error wrapping api.ErrInvalid that names the
// file. GPUs are indexed in PCI bus order, as nvidia-smi does.
func Read(procFS, sysFS string) (*Driver, error) {
	root := filepath.Join(procFS, "driver", "nvidia")
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no NVIDIA kernel driver (%s is missing): %w", root, api.ErrNotFound)
	}
	d := &Driver{GPUs: []api.GPU{}}
	if b, err := os.ReadFile(filepath.Join(root, "version")); err == nil {
		d.Version = driverVersion(string(b))
	}
	dirs, err := os.ReadDir(filepath.Join(root, "gpus"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range dirs {
		p := filepath.Join(root, "gpus", e.Name(), "information")
		g, err := parseInformation(p)
		if err != nil {
			return nil, err
		}
		g.NUMANode = numaNode(sysFS, g.PCIBusID)
		g.CPUAffinity = cpuAffinity(sysFS, g.PCIBusID)
		d.GPUs = append(d.GPUs, g)
	}
	slices.SortFunc(d.GPUs, func(a, b api.GPU) int {
		return strings.Compare(strings.ToLower(a.PCIBusID), strings.ToLower(b.PCIBusID))
	})
	for i := range d.GPUs {
		d.GPUs[i].Index = i
	}
	return d, nil
}

// driverVersion takes the version from "NVRM version: NVIDIA UNIX x86_64
// Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024".
func driverVersion(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	for i, w := range f {
		if w == "Module" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// parseInformation reads one GPU's "Key:   value" lines.
func parseInformation(path string) (api.GPU, error) {
	g := api.GPU{NUMANode: -1, Minor: -1}
	f, err := os.Open(path)
	if err != nil {
		return g, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Model":
			g.Model = v
		case "GPU UUID":
			g.UUID = v
		case "Bus Location":
			g.PCIBusID = v
		case "Device Minor":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return g, fmt.Errorf("%s: Device Minor %q is not 0-255: %w", path, v, api.ErrInvalid)
			}
			g.Minor = n
		}
	}
	if err := sc.Err(); err != nil {
		return g, err
	}
	if g.Minor < 0 || g.PCIBusID == "" || g.Model == "" {
		return g, fmt.Errorf("%s: no Model, Bus Location or Device Minor: %w", path, api.ErrInvalid)
	}
	return g, nil
}

// numaNode reads the PCI device's NUMA node; -1 when unknown.
func numaNode(sysFS, busID string) int {
	// /proc writes 0000:3b:00.0; sysfs names devices the same way, in
	// lower case.
	b, err := os.ReadFile(filepath.Join(sysFS, "bus", "pci", "devices", strings.ToLower(busID), "numa_node"))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// cpuAffinity reads the PCI device's local CPUs; nil when unknown.
func cpuAffinity(sysFS, busID string) []int {
	b, err := os.ReadFile(filepath.Join(sysFS, "bus", "pci", "devices", strings.ToLower(busID), "local_cpulist"))
	if err != nil {
		return nil
	}
	cpus, err := resources.ParseList(strings.TrimSpace(string(b)))
	if err != nil || len(cpus) == 0 {
		return nil
	}
	return cpus
}

// Source offers the GPUs /proc/driver/nvidia lists to host resource
// detection (resources.GPUSource): none, and no error, on a host without the
// NVIDIA driver.
type Source struct{ ProcFS, SysFS string }

// GPUs implements resources.GPUSource.
func (s Source) GPUs(context.Context) ([]api.GPU, error) {
	d, err := Read(s.ProcFS, s.SysFS)
	if errors.Is(err, api.ErrNotFound) {
		return []api.GPU{}, nil
	}
	if err != nil {
		return nil, err
	}
	return d.GPUs, nil
}
