package resources

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/internal/userfile"
)

var update = flag.Bool("update", false, "rewrite the fixtures' expected.json")

// fixtureDisk stands in for statfs in fixture tests.
const fixtureDisk = 500 << 30

func fixtureConfig(dir string) Config {
	return Config{
		ProcFS: filepath.Join(dir, "proc"), SysFS: filepath.Join(dir, "sys"), WorkDir: "/var/lib/caisson",
		DiskSize: func(string) (int64, error) { return fixtureDisk, nil },
	}
}

func fixtures(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/*/proc")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

// TestFixtures compares Detect on every fixture with its expected.json
// (go test ./resources -update rewrites them).
func TestFixtures(t *testing.T) {
	for _, dir := range fixtures(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got, err := Detect(context.Background(), fixtureConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(dir, "expected.json")
			if *update {
				b, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			var want api.NodeResources
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("Detect (-%s +got):\n%s", golden, diff)
			}
		})
	}
}

// TestFixtureFacts states, independently of the golden files, what each
// fixture is there to show.
func TestFixtureFacts(t *testing.T) {
	const gib, kib = 1 << 30, 1 << 10
	for _, tc := range []struct {
		name, arch, model, platform, machine, mmu string
		cpus                                      float64
		memory                                    int64
		smt                                       api.SMT
		pageSize                                  int64
		hugePages                                 []int64
		nodes, cpuNodes                           []int
	}{
		{name: "x86-xeon-2s", arch: "amd64", model: "Intel(R) Xeon(R) Silver 4110 CPU @ 2.10GHz",
			cpus: 32, memory: (98566784 + 98839564) * kib, smt: api.SMT{ThreadsPerCore: 2, OnlineThreadsPerCore: 2, Cores: 16},
			pageSize: 4096, hugePages: []int64{2 << 20, 1 << 30}, nodes: []int{0, 1}, cpuNodes: []int{0, 1}},
		// POWER8 bare metal: SMT8, 64 KiB pages, Hash MMU hugepages, sparse node ids.
		{name: "power8-powernv", arch: "ppc64le", model: "POWER8E (raw), altivec supported", platform: "PowerNV", machine: "8247-22L", mmu: "Hash",
			cpus: 160, memory: (66584448 + 67043072 + 67043072 + 66978432) * kib, smt: api.SMT{ThreadsPerCore: 8, OnlineThreadsPerCore: 8, Cores: 20},
			pageSize: 64 << 10, hugePages: []int64{16 << 20, 16 << 30}, nodes: []int{0, 1, 16, 17}, cpuNodes: []int{0, 1, 16, 17}},
		// AC922: GPU memory in CPU-less nodes 252-255 is listed but not
		// offered as host memory; v1's 64 KiB "unlimited" is no limit.
		{name: "power9-ac922", arch: "ppc64le", model: "POWER9, altivec supported", platform: "PowerNV", machine: "8335-GTH", mmu: "Radix",
			cpus: 128, memory: (266902848 + 267712960) * kib, smt: api.SMT{ThreadsPerCore: 4, OnlineThreadsPerCore: 4, Cores: 32},
			pageSize: 64 << 10, hugePages: []int64{2 << 20, 1 << 30}, nodes: []int{0, 8, 252, 253, 254, 255}, cpuNodes: []int{0, 8}},
		// An SMT8 LPAR after ppc64_cpu --smt=4: 8 configured threads, 4 online.
		{name: "power9-lpar", arch: "ppc64le", model: "POWER9 (architected), altivec supported", platform: "pSeries", machine: "IBM,9009-22A", mmu: "Hash",
			cpus: 8, memory: 66802816 * kib, smt: api.SMT{ThreadsPerCore: 8, OnlineThreadsPerCore: 4, Cores: 2},
			pageSize: 64 << 10, hugePages: []int64{16 << 20}, nodes: []int{0}, cpuNodes: []int{0}},
		// cgroup v2 with no limit ("max") on the service and its slice.
		{name: "power10-lpar", arch: "ppc64le", model: "POWER10 (architected), altivec supported", platform: "pSeries", machine: "IBM,9105-22A", mmu: "Radix",
			cpus: 32, memory: (66912256 + 67108864) * kib, smt: api.SMT{ThreadsPerCore: 8, OnlineThreadsPerCore: 8, Cores: 4},
			pageSize: 64 << 10, hugePages: []int64{2 << 20, 1 << 30}, nodes: []int{0, 1}, cpuNodes: []int{0, 1}},
		// In Docker (no cgroup namespace): cpuset 0-1, quota 1.5 CPUs, 2 GiB.
		{name: "cgroup-v1", arch: "amd64", model: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
			cpus: 1.5, memory: 2 * gib, smt: api.SMT{ThreadsPerCore: 2, OnlineThreadsPerCore: 2, Cores: 4},
			pageSize: 4096, hugePages: []int64{2 << 20, 1 << 30}, nodes: []int{0}, cpuNodes: []int{0}},
		// A systemd service on cgroup v2: the cgroup's cpuset alone (no
		// status file) restricts the CPUs.
		{name: "cgroup-v2", arch: "amd64", model: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
			cpus: 1.5, memory: 2 * gib, smt: api.SMT{ThreadsPerCore: 2, OnlineThreadsPerCore: 2, Cores: 4},
			pageSize: 4096, hugePages: []int64{2 << 20, 1 << 30}, nodes: []int{0}, cpuNodes: []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Detect(context.Background(), fixtureConfig(filepath.Join("testdata", tc.name)))
			if err != nil {
				t.Fatal(err)
			}
			a := r.Attributes
			var nodes []int
			for _, n := range a.NUMANodes {
				nodes = append(nodes, n.ID)
			}
			type facts struct {
				Arch, Model, Platform, Machine, MMU string
				CPUs                                float64
				Memory, Disk, PageSize              int64
				SMT                                 api.SMT
				HugePages                           []int64
				Nodes, CPUNodes                     []int
				Ports                               []api.PortRange
				GPUs                                []api.GPU
			}
			want := facts{tc.arch, tc.model, tc.platform, tc.machine, tc.mmu, tc.cpus, tc.memory, fixtureDisk, tc.pageSize,
				tc.smt, tc.hugePages, tc.nodes, tc.cpuNodes, DefaultPorts, []api.GPU{}}
			got := facts{a.Arch, a.CPUModel, a.CPUPlatform, a.MachineModel, a.MMU, r.CPUs, r.MemoryBytes, r.DiskBytes, a.PageSize,
				a.SMT, a.HugePageSizes, nodes, a.CPUNodeIDs(), r.Ports, r.GPUs}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if a.OS != "linux" || a.Kernel == "" {
				t.Errorf("os %q, kernel %q", a.OS, a.Kernel)
			}
		})
	}
}

// copyFixture copies a fixture to a temporary dir that a test may spoil.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		fixture, file, content string
	}{
		{"x86-xeon-2s", "sys/devices/system/cpu/online", "0-x\n"},
		{"x86-xeon-2s", "sys/devices/system/cpu/online", "\n"},
		{"x86-xeon-2s", "proc/meminfo", "MemTotal:       lots kB\n"},
		{"x86-xeon-2s", "proc/meminfo", "MemFree:        1 kB\n"},
		{"x86-xeon-2s", "proc/cpuinfo", "processor	: 0\nmodel name	Intel\n"},
		{"x86-xeon-2s", "proc/self/status", "Name:	caisson\nCpus_allowed_list:	3-1\n"},
		{"x86-xeon-2s", "proc/self/smaps", "00010000-00660000 r-xp 00000000 fd:00 1 /x\nKernelPageSize:  four kB\n"},
		{"x86-xeon-2s", "sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "1,17\n"},
		{"x86-xeon-2s", "sys/devices/system/node/online", "0-1,x\n"},
		{"x86-xeon-2s", "sys/devices/system/node/node1/cpulist", "8-15,24-\n"},
		{"x86-xeon-2s", "sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: 12 MB\n"},
		{"x86-xeon-2s", "sys/kernel/mm/hugepages/hugepages-twokB/nr_hugepages", "0\n"},
		{"power9-lpar", "sys/firmware/devicetree/base/cpus/PowerPC,POWER9@0/ibm,ppc-interrupt-server#s", "\x00\x00\x00"},
		{"cgroup-v1", "proc/self/cgroup", "4:memory\n"},
		{"cgroup-v1", "proc/self/mountinfo", "not a mount\n"},
		{"cgroup-v1", "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "0\n"},
		{"cgroup-v1", "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "often\n"},
		{"cgroup-v1", "sys/fs/cgroup/memory/memory.limit_in_bytes", "-5\n"},
		{"cgroup-v1", "sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-1,a\n"},
		{"cgroup-v2", "sys/fs/cgroup/system.slice/caisson-agent.service/cpu.max", "150000\n"},
		{"cgroup-v2", "sys/fs/cgroup/system.slice/cpu.max", "max 0\n"},
		{"cgroup-v2", "sys/fs/cgroup/system.slice/memory.max", "lots\n"},
	} {
		t.Run(tc.fixture+"/"+tc.file, func(t *testing.T) {
			dir := copyFixture(t, tc.fixture)
			path := filepath.Join(dir, tc.file)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Detect(context.Background(), fixtureConfig(dir))
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Detect = %v, want api.ErrInvalid", err)
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Detect = %v, want a *FileError", err)
			}
			// A bad hugepages entry is named by its directory.
			if fe.Path != path && fe.Path != filepath.Dir(path) {
				t.Errorf("error names %s, want %s", fe.Path, path)
			}
		})
	}
}

func TestMissingRequiredFile(t *testing.T) {
	for _, file := range []string{"proc/meminfo", "proc/cpuinfo", "sys/devices/system/cpu/online"} {
		dir := copyFixture(t, "x86-xeon-2s")
		if err := os.Remove(filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
		if _, err := Detect(context.Background(), fixtureConfig(dir)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("without %s: Detect = %v, want fs.ErrNotExist", file, err)
		}
	}
}

// Without mountinfo, the cgroup is found in the usual layout under sysfs.
func TestCgroupWithoutMountinfo(t *testing.T) {
	dir := copyFixture(t, "cgroup-v2")
	if err := os.Remove(filepath.Join(dir, "proc/self/mountinfo")); err != nil {
		t.Fatal(err)
	}
	r, err := Detect(context.Background(), fixtureConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if r.CPUs != 1.5 || r.MemoryBytes != 2<<30 {
		t.Errorf("cpus %g, memory %d; want 1.5 and 2 GiB", r.CPUs, r.MemoryBytes)
	}
}

// A kernel without NUMA has no node directory: one node holds everything.
func TestNoNUMA(t *testing.T) {
	dir := copyFixture(t, "cgroup-v1")
	if err := os.RemoveAll(filepath.Join(dir, "sys/devices/system/node")); err != nil {
		t.Fatal(err)
	}
	r, err := Detect(context.Background(), fixtureConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := []api.NUMANode{{ID: 0, CPUs: []int{0, 1, 2, 3, 4, 5, 6, 7}, MemoryBytes: 16391428 << 10}}
	if diff := cmp.Diff(want, r.Attributes.NUMANodes); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

type fakeGPUs struct {
	gpus []api.GPU
	err  error
}

func (f fakeGPUs) GPUs(context.Context) ([]api.GPU, error) { return f.gpus, f.err }

func TestOverridesAndReserve(t *testing.T) {
	two := fakeGPUs{gpus: []api.GPU{{UUID: "GPU-a", Index: 0, NUMANode: 0}, {UUID: "GPU-b", Index: 1, Minor: 1, NUMANode: 8}}}
	const gib = 1 << 30
	detected := (98566784 + 98839564) << 10
	for _, tc := range []struct {
		name, resources, reserve string
		gpus                     GPUSource
		cpus                     float64
		mem, disk                int64
		ports                    []api.PortRange
		ngpus                    int
	}{
		{name: "detected", cpus: 32, mem: int64(detected), disk: fixtureDisk, ports: DefaultPorts},
		{name: "replaced", resources: "cpus:8;mem:16g;disk:100g;ports:[31000-32000]", cpus: 8, mem: 16 * gib, disk: 100 * gib, ports: DefaultPorts},
		{name: "reserved", reserve: "cpus:1;mem:2g;disk:10g", cpus: 31, mem: int64(detected) - 2*gib, disk: fixtureDisk - 10*gib, ports: DefaultPorts},
		{name: "both", resources: "cpus:4;ports:[20000-20999,31000-32000]", reserve: "cpus:0.5;ports:[20000-20099,32000]",
			cpus: 3.5, mem: int64(detected), disk: fixtureDisk, ports: []api.PortRange{{Begin: 20100, End: 20999}, {Begin: 31000, End: 31999}}},
		{name: "all reserved", resources: "cpus:2", reserve: "cpus:2", mem: int64(detected), disk: fixtureDisk, ports: DefaultPorts},
		{name: "gpus", gpus: two, cpus: 32, mem: int64(detected), disk: fixtureDisk, ports: DefaultPorts, ngpus: 2},
		{name: "gpus hidden", resources: "gpus:0", gpus: fakeGPUs{err: errors.New("not to be asked")}, cpus: 32, mem: int64(detected), disk: fixtureDisk, ports: DefaultPorts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixtureConfig("testdata/x86-xeon-2s")
			cfg.Overrides, cfg.Reserve, cfg.GPUs = tc.resources, tc.reserve, tc.gpus
			r, err := Detect(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			type amounts struct {
				CPUs      float64
				Mem, Disk int64
				Ports     []api.PortRange
				GPUs      int
			}
			want := amounts{tc.cpus, tc.mem, tc.disk, tc.ports, tc.ngpus}
			got := amounts{r.CPUs, r.MemoryBytes, r.DiskBytes, r.Ports, len(r.GPUs)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, tc := range []struct{ resources, reserve string }{
		{reserve: "cpus:33"},
		{resources: "mem:1g", reserve: "mem:2g"},
		{resources: "disk:0", reserve: "disk:1m"},
		{reserve: "ports:[8080]"},
		{reserve: "ports:[31900-32100]"},
		{reserve: "gpus:0"},
		{resources: "cpus:lots"},
		{reserve: "colour:blue"},
	} {
		cfg := fixtureConfig("testdata/x86-xeon-2s")
		cfg.Overrides, cfg.Reserve = tc.resources, tc.reserve
		if _, err := Detect(context.Background(), cfg); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Detect(resources %q, reserve %q) = %v, want api.ErrInvalid", tc.resources, tc.reserve, err)
		}
	}
	broken := errors.New("nvml exploded")
	cfg := fixtureConfig("testdata/x86-xeon-2s")
	cfg.GPUs = fakeGPUs{err: broken}
	if _, err := Detect(context.Background(), cfg); !errors.Is(err, broken) {
		t.Errorf("Detect with a failing GPU source = %v, want its error", err)
	}
}

// TestLive sanity-checks Detect on this machine.
func TestLive(t *testing.T) {
	r, err := Detect(context.Background(), Config{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if r.CPUs <= 0 || r.CPUs > float64(runtime.NumCPU()) {
		t.Errorf("cpus %g, want within (0, %d]", r.CPUs, runtime.NumCPU())
	}
	if r.MemoryBytes <= 0 || r.DiskBytes <= 0 {
		t.Errorf("memory %d, disk %d; want both > 0", r.MemoryBytes, r.DiskBytes)
	}
	if len(r.Attributes.NUMANodes) == 0 || len(r.Attributes.CPUNodeIDs()) == 0 {
		t.Errorf("NUMA nodes %+v, want one with CPUs", r.Attributes.NUMANodes)
	}
	if r.Attributes.SMT.Cores == 0 || r.Attributes.SMT.ThreadsPerCore == 0 || r.Attributes.PageSize <= 0 {
		t.Errorf("smt %+v, page size %d", r.Attributes.SMT, r.Attributes.PageSize)
	}
	// Under qemu-user the kernel is the host's: its arch and page size are
	// not the test binary's.
	if m, err := os.ReadFile("/proc/sys/kernel/arch"); err == nil && goarch(strings.TrimSpace(string(m))) != runtime.GOARCH {
		t.Logf("emulated: kernel %s, test binary %s", strings.TrimSpace(string(m)), runtime.GOARCH)
		return
	}
	if r.Attributes.Arch != runtime.GOARCH {
		t.Errorf("arch %q, want %q", r.Attributes.Arch, runtime.GOARCH)
	}
	if r.Attributes.PageSize != int64(os.Getpagesize()) {
		t.Errorf("page size %d, want %d", r.Attributes.PageSize, os.Getpagesize())
	}
	t.Logf("%+v", r)
}

// The agent's cgroup as a container sees it: at the mount's root in its own
// cgroup namespace (limits apply), or outside the mount's root (skipped).
func TestCgroupMountRoot(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup, root string
		cpus               float64
		mem                int64
	}{
		{"namespace", "0::/\n", "/", 1.5, 2 << 30},
		{"outside the mount", "0::/system.slice/caisson-agent.service\n", "/kubepods", 8, 16391428 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, "cgroup-v2")
			cg := filepath.Join(dir, "sys/fs/cgroup")
			for name, content := range map[string]string{
				"proc/self/cgroup":                    tc.cgroup,
				"proc/self/mountinfo":                 "30 22 0:26 " + tc.root + " /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n",
				"sys/fs/cgroup/cpu.max":               "150000 100000\n",
				"sys/fs/cgroup/memory.max":            "2147483648\n",
				"sys/fs/cgroup/cpuset.cpus.effective": "0-1\n",
			} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.RemoveAll(filepath.Join(cg, "system.slice")); err != nil {
				t.Fatal(err)
			}
			r, err := Detect(context.Background(), fixtureConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			if r.CPUs != tc.cpus || r.MemoryBytes != tc.mem {
				t.Errorf("cpus %g, memory %d; want %g, %d", r.CPUs, r.MemoryBytes, tc.cpus, tc.mem)
			}
		})
	}
}

// TestHostFilesBounded points host files at what --path.procfs and
// --path.sysfs could name: an endless device or FIFO, a directory. Detect
// refuses each, bounded, rather than growing or hanging.
func TestHostFilesBounded(t *testing.T) {
	for _, tc := range []struct {
		file  string
		setup func(t *testing.T, path string)
		limit bool
	}{
		{"proc/cpuinfo", func(t *testing.T, p string) { replace(t, p, func() error { return os.Symlink("/dev/zero", p) }) }, true},
		{"proc/meminfo", func(t *testing.T, p string) { replace(t, p, func() error { return os.Mkdir(p, 0o755) }) }, false},
		{"proc/self/smaps", func(t *testing.T, p string) {
			replace(t, p, func() error {
				return os.Symlink(testutil.FIFO(t, t.TempDir(), "Rss: 4 kB\n", true), p)
			})
		}, true},
		{"sys/devices/system/cpu/online", func(t *testing.T, p string) {
			replace(t, p, func() error {
				return os.Symlink(testutil.FIFO(t, t.TempDir(), "0-1,", true), p)
			})
		}, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dir := copyFixture(t, "x86-xeon-2s")
			tc.setup(t, filepath.Join(dir, tc.file))
			_, err := Detect(context.Background(), fixtureConfig(dir))
			var le *userfile.LimitError
			if !errors.Is(err, api.ErrInvalid) || errors.As(err, &le) != tc.limit || tc.limit && le.Limit != maxHostFile {
				t.Errorf("Detect = %v, want api.ErrInvalid (a limit: %v)", err, tc.limit)
			}
		})
	}
}

// replace removes path and makes something else there.
func replace(t *testing.T, path string, make func() error) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := make(); err != nil {
		t.Fatal(err)
	}
}

// TestHostFilesEndWithContext makes a host file a FIFO that no writer
// opens: the read waits, and ends with the context, so a launch that reads
// them (the GPU isolator's cpuset) stays cancellable.
func TestHostFilesEndWithContext(t *testing.T) {
	detect := map[string]func(context.Context, Config) error{
		"Detect": func(ctx context.Context, cfg Config) error { _, err := Detect(ctx, cfg); return err },
		"DetectCPUSet": func(ctx context.Context, cfg Config) error {
			_, err := DetectCPUSet(ctx, cfg, "/caisson")
			return err
		},
	}
	for _, file := range []string{"sys/devices/system/cpu/online", "proc/self/status", "sys/devices/system/node/node1/cpulist"} {
		for name, fn := range detect {
			t.Run(name+" "+file, func(t *testing.T) {
				dir := copyFixture(t, "x86-xeon-2s")
				p := filepath.Join(dir, file)
				replace(t, p, func() error { return syscall.Mkfifo(p, 0o600) })
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- fn(ctx, fixtureConfig(dir)) }()
				cancel()
				select {
				case err := <-done:
					if !errors.Is(err, context.Canceled) {
						t.Errorf("%s = %v, want an error wrapping context.Canceled", name, err)
					}
				case <-time.After(time.Minute):
					if fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						syscall.Close(fd) // frees the reader
					}
					t.Fatalf("%s did not end with its context", name)
				}
			})
		}
	}
}
