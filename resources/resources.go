package resources

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/userfile"
)

// DefaultPorts is the port range offered when the admin names none, as the
// Mesos agent offers it.
var DefaultPorts = []api.PortRange{{Begin: 31000, End: 32000}}

// GPUSource lists the GPUs of this host. Package gpu implements it; a source
// with no driver to ask returns no GPUs and no error. An error is a failure
// worth stopping for, and Detect returns it.
type GPUSource interface {
	GPUs(ctx context.Context) ([]api.GPU, error)
}

// Config says where to look and what the admin decided.
type Config struct {
	// ProcFS and SysFS are where procfs and sysfs are mounted: /proc and
	// /sys by default, the host's when the agent runs in a container, a
	// fixture's in tests.
	ProcFS, SysFS string
	// WorkDir is the agent's work dir: DiskBytes is the size of the
	// filesystem that holds it (or its nearest existing parent). Empty:
	// no disk is detected.
	WorkDir string
	// Ports are offered unless Overrides names ports; nil means
	// DefaultPorts.
	Ports []api.PortRange
	// Overrides replace detected values, as Mesos's --resources:
	// "cpus:8;mem:16g;disk:100g;ports:[31000-32000]" (see ParseAmounts).
	Overrides string
	// Reserve is held back for the system, as the kubelet's
	// --system-reserved: "cpus:1;mem:2g". It is subtracted after Overrides
	// apply; reserving more than there is is an error.
	Reserve string
	// GPUs lists the GPUs; nil means none.
	GPUs GPUSource
	// DiskSize returns the total size of the filesystem holding path; nil
	// means statfs(2). Tests replace it.
	DiskSize func(path string) (int64, error)
	// Logger receives debug lines about the sources used; nil discards.
	Logger *slog.Logger
}

// Validate checks what the admin decided (Overrides and Reserve) without
// looking at the host, so that a mistake is refused before any work.
// Errors wrap api.ErrInvalid.
func (c Config) Validate() error {
	_, _, err := c.amounts()
	return err
}

func (c Config) amounts() (over, reserve Amounts, err error) {
	if over, err = ParseAmounts(c.Overrides); err != nil {
		return over, reserve, fmt.Errorf("resources: %w", err)
	}
	if reserve, err = ParseAmounts(c.Reserve); err != nil {
		return over, reserve, fmt.Errorf("reserve: %w", err)
	}
	if reserve.GPUs != nil {
		return over, reserve, fmt.Errorf("reserve: gpus cannot be reserved; hide them with gpus:0 in the resources: %w", api.ErrInvalid)
	}
	return over, reserve, nil
}

// FileError is a file whose contents do not parse. It matches api.ErrInvalid.
type FileError struct {
	// Path is the file as read, under the configured procfs or sysfs.
	Path   string
	Reason string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Path, e.Reason, api.ErrInvalid)
}

func (e *FileError) Unwrap() error { return api.ErrInvalid }

// host reads one procfs and one sysfs.
type host struct {
	proc, sys string
	log       *slog.Logger
}

func (h *host) procPath(rel string) string { return filepath.Join(h.proc, rel) }
func (h *host) sysPath(rel string) string  { return filepath.Join(h.sys, rel) }

// maxHostFile bounds what is read of one procfs or sysfs file: the
// largest, cpuinfo, has some kilobytes per CPU. --path.procfs and
// --path.sysfs may point anywhere, at /dev/zero or a FIFO among others.
const maxHostFile = 16 << 20

// read returns a file's contents; ok is false when the file does not exist.
func read(ctx context.Context, path string) (data string, ok bool, err error) {
	b, err := userfile.ReadFileContext(ctx, path, maxHostFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read host information: %w", err)
	}
	return string(b), true, nil
}

// mustRead is read for a file every Linux host has.
func mustRead(ctx context.Context, path string) (string, error) {
	data, ok, err := read(ctx, path)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("read host information: %s: %w", path, fs.ErrNotExist)
	}
	return data, nil
}

// readList reads a file in the kernel's list format; ok is false when it
// does not exist.
func readList(ctx context.Context, path string) (ids []int, ok bool, err error) {
	data, ok, err := read(ctx, path)
	if !ok || err != nil {
		return nil, ok, err
	}
	ids, err = ParseList(data)
	if err != nil {
		return nil, false, &FileError{Path: path, Reason: err.Error()}
	}
	return ids, true, nil
}

// Detect finds what this host offers: online CPUs within the agent's own
// cpuset and CPU quota, memory within its cgroup limit, the work dir's
// filesystem, the configured ports, the GPUs, and the attributes. The
// overrides then replace what they name and the reservation is subtracted.
func Detect(ctx context.Context, cfg Config) (*api.NodeResources, error) {
	over, reserve, err := cfg.amounts()
	if err != nil {
		return nil, err
	}
	h := newHost(cfg)

	online, err := h.onlineCPUs(ctx)
	if err != nil {
		return nil, err
	}
	attrs, err := h.attributes(ctx, online)
	if err != nil {
		return nil, err
	}
	res := &api.NodeResources{Ports: cfg.Ports, GPUs: []api.GPU{}, Attributes: attrs}
	if res.Ports == nil {
		res.Ports = DefaultPorts
	}
	res.Ports = append([]api.PortRange{}, res.Ports...)

	cg, err := h.cgroupLimits(ctx)
	if err != nil {
		return nil, err
	}
	if res.CPUs, err = h.cpus(ctx, online, cg); err != nil {
		return nil, err
	}
	if res.MemoryBytes, err = h.memory(ctx, cg, attrs.NUMANodes); err != nil {
		return nil, err
	}
	if cfg.WorkDir != "" && over.DiskBytes == nil {
		size := cfg.DiskSize
		if size == nil {
			size = diskSize
		}
		if res.DiskBytes, err = size(cfg.WorkDir); err != nil {
			return nil, fmt.Errorf("disk of %s: %w", cfg.WorkDir, err)
		}
	}
	if cfg.GPUs != nil && (over.GPUs == nil || *over.GPUs != 0) {
		gpus, err := cfg.GPUs.GPUs(ctx)
		if err != nil {
			return nil, fmt.Errorf("gpus: %w", err)
		}
		res.GPUs = append(res.GPUs, gpus...)
	}

	over.replace(res)
	if err := reserve.subtract(res); err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return res, nil
}

// usableCPUs is the online CPUs the agent may run on: those in its
// Cpus_allowed_list and its cgroup's cpuset.
func (h *host) usableCPUs(ctx context.Context, online []int, cg cgroupLimits) ([]int, error) {
	usable := online
	allowed, ok, err := h.statusList(ctx, "Cpus_allowed_list")
	if err != nil {
		return nil, err
	}
	if ok {
		usable = Intersect(usable, allowed)
	}
	if cg.cpuset != nil {
		usable = Intersect(usable, cg.cpuset)
	}
	return usable, nil
}

// cpus counts the online CPUs the agent may run on, capped by its CPU
// quota, to a thousandth of a CPU.
func (h *host) cpus(ctx context.Context, online []int, cg cgroupLimits) (float64, error) {
	usable, err := h.usableCPUs(ctx, online, cg)
	if err != nil {
		return 0, err
	}
	if len(usable) == 0 {
		return 0, fmt.Errorf("no online CPU (%s) is in the agent's cpuset: %w", FormatList(online), api.ErrUnavailable)
	}
	cpus := float64(len(usable))
	if cg.quota > 0 && cg.quota < cpus {
		cpus = cg.quota
	}
	return math.Floor(cpus*1000) / 1000, nil
}

func (h *host) onlineCPUs(ctx context.Context) ([]int, error) {
	path := h.sysPath("devices/system/cpu/online")
	if _, err := mustRead(ctx, path); err != nil {
		return nil, err
	}
	online, _, err := readList(ctx, path)
	if err != nil {
		return nil, err
	}
	if len(online) == 0 {
		return nil, &FileError{Path: path, Reason: "no online CPU"}
	}
	return online, nil
}

// memory is MemTotal less the memory of CPU-less NUMA nodes (GPU memory on
// an AC922, which containers are kept off), capped by the agent's cgroup
// memory limit.
func (h *host) memory(ctx context.Context, cg cgroupLimits, nodes []api.NUMANode) (int64, error) {
	path := h.procPath("meminfo")
	data, err := mustRead(ctx, path)
	if err != nil {
		return 0, err
	}
	total, ok, err := meminfoTotal(data, "MemTotal:")
	if err != nil {
		return 0, &FileError{Path: path, Reason: err.Error()}
	}
	if !ok {
		return 0, &FileError{Path: path, Reason: "no MemTotal line"}
	}
	for _, n := range nodes {
		if len(n.CPUs) == 0 && n.MemoryBytes <= total {
			total -= n.MemoryBytes
		}
	}
	if cg.memory > 0 && cg.memory < total {
		total = cg.memory
	}
	return total, nil
}

// meminfoTotal finds "KEY N kB" among the lines of a meminfo file (the
// node files prefix it with "Node N").
func meminfoTotal(data, key string) (n int64, ok bool, err error) {
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			if w != key {
				continue
			}
			if len(f) != i+3 || f[i+2] != "kB" {
				return 0, false, fmt.Errorf("bad line %q", line)
			}
			kb, err := parseInt(f[i+1])
			if err != nil || kb > math.MaxInt64>>10 {
				return 0, false, fmt.Errorf("bad line %q", line)
			}
			return kb << 10, true, nil
		}
	}
	return 0, false, nil
}

// firstLineWith scans a possibly large file (smaps) for the first line with
// the prefix.
func firstLineWith(ctx context.Context, path, prefix string) (line string, ok bool, err error) {
	f, err := userfile.OpenContext(ctx, path, maxHostFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read host information: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text(), true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	return "", false, nil
}

// goarch names the kernel's machine (uname -m) as GOARCH does.
func goarch(machine string) string {
	switch machine {
	case "x86_64":
		return "amd64"
	case "i386", "i486", "i586", "i686":
		return "386"
	case "aarch64", "aarch64_be", "arm64":
		return "arm64"
	case "loongarch64":
		return "loong64"
	}
	if strings.HasPrefix(machine, "armv") {
		return "arm"
	}
	return machine // ppc64le, ppc64, s390x, riscv64, mips64 are already GOARCH names
}

// arch is the kernel's machine from the kernel.arch sysctl, named as GOARCH
// names it, or the agent's own GOARCH where the kernel has no such sysctl
// (older kernels).
func (h *host) arch(ctx context.Context) (string, error) {
	data, ok, err := read(ctx, h.procPath("sys/kernel/arch"))
	if err != nil {
		return "", err
	}
	if m := strings.TrimSpace(data); ok && m != "" {
		return goarch(m), nil
	}
	return runtime.GOARCH, nil
}
