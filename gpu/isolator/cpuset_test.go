package isolator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/manager"
	"github.com/caisson/caisson/gpu/manager/managertest"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/oci"
	"github.com/caisson/caisson/resources"
)

// ac922Host is an AC922: NUMA nodes 0 (CPUs 0-63) and 8 (64-127), and
// the GPUs' memory as CPU-less nodes 252 and 253, which are never memory
// nodes for containers.
func ac922Host() *resources.CPUSet {
	return &resources.CPUSet{CPUs: ids(0, 127), Mems: []int{0, 8}, Nodes: []api.NUMANode{
		{ID: 0, CPUs: ids(0, 63), MemoryBytes: 256 << 30},
		{ID: 8, CPUs: ids(64, 127), MemoryBytes: 256 << 30},
		{ID: 252, CPUs: []int{}, MemoryBytes: 16 << 30},
		{ID: 253, CPUs: []int{}, MemoryBytes: 16 << 30},
	}}
}

// ids is lo..hi.
func ids(lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// cpusetResult is what a test compares of a spec after the isolator's
// SpecOpts: the cpuset, the CPU limits beside it, and the annotation,
// of which only the start is compared when it gives a reason.
type cpusetResult struct {
	Cpus, Mems string
	Shares     uint64
	Annotation string
}

func result(s *specs.Spec) cpusetResult {
	var r cpusetResult
	if c := s.Linux.Resources.CPU; c != nil {
		r.Cpus, r.Mems = c.Cpus, c.Mems
		if c.Shares != nil {
			r.Shares = *c.Shares
		}
	}
	r.Annotation = s.Annotations[AnnotationCPUSet]
	if why, ok := strings.CutPrefix(r.Annotation, "not applied: "); ok && why != "" {
		r.Annotation = "not applied: …"
	}
	if cpus, why, ok := strings.Cut(r.Annotation, "; mems not applied: "); ok && why != "" {
		r.Annotation = cpus + "; mems not applied: …"
	}
	return r
}

// TestCPUSetHint: the best-effort cpuset of a grant is the GPUs' nearest
// CPUs and NUMA nodes within what the host lets a container use; when
// nothing is left, none is set and the annotation says why; a cpuset the
// spec already has wins.
func TestCPUSetHint(t *testing.T) {
	shares := uint64(512)
	for _, tc := range []struct {
		name  string
		grant manager.Grant
		host  *resources.CPUSet
		err   error
		base  *specs.LinuxCPU
		want  cpusetResult
	}{
		{name: "affinity 0-63 on a host with CPUs 0-1",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)}, host: oneNodeHost(),
			want: cpusetResult{Cpus: "0-1", Mems: "0", Annotation: "cpus 0-1, mems 0"}},
		{name: "a GPU on NUMA node 1 of a one-node host",
			grant: manager.Grant{NUMANodes: []int{1}, CPUs: ids(16, 31)}, host: oneNodeHost(),
			want: cpusetResult{Annotation: "not applied: …"}},
		{name: "CPU-less node 252 is not a memory node",
			grant: manager.Grant{NUMANodes: []int{0, 252}, CPUs: ids(0, 63)}, host: ac922Host(),
			want: cpusetResult{Cpus: "0-63", Mems: "0", Annotation: "cpus 0-63, mems 0"}},
		{name: "a GPU whose node is its CPU-less memory: the memory of its CPUs",
			grant: manager.Grant{NUMANodes: []int{253}, CPUs: ids(64, 127)}, host: ac922Host(),
			want: cpusetResult{Cpus: "64-127", Mems: "8", Annotation: "cpus 64-127, mems 8"}},
		{name: "affinity unknown: the CPUs of the GPUs' node",
			grant: manager.Grant{NUMANodes: []int{8}}, host: ac922Host(),
			want: cpusetResult{Cpus: "64-127", Mems: "8", Annotation: "cpus 64-127, mems 8"}},
		{name: "affinity unknown, node CPU-less",
			grant: manager.Grant{NUMANodes: []int{252}}, host: ac922Host(),
			want: cpusetResult{Annotation: "not applied: …"}},
		{name: "nothing known",
			grant: manager.Grant{}, host: oneNodeHost(),
			want: cpusetResult{Annotation: "not applied: …"}},
		{name: "no memory node the agent may use: cpus only",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)},
			host:  &resources.CPUSet{CPUs: []int{0, 1}, Mems: []int{}, Nodes: oneNodeHost().Nodes},
			want:  cpusetResult{Cpus: "0-1", Annotation: "cpus 0-1; mems not applied: …"}},
		{name: "no cpuset controller",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)},
			host:  &resources.CPUSet{CPUs: []int{0, 1}, Mems: []int{0}, Unavailable: "no cpuset cgroup controller is mounted"},
			want:  cpusetResult{Annotation: "not applied: …"}},
		{name: "host unreadable",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)}, err: fmt.Errorf("read host information: %w", api.ErrInvalid),
			want: cpusetResult{Annotation: "not applied: …"}},
		{name: "the cgroups isolator's CPU limit stays",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)}, host: oneNodeHost(),
			base: &specs.LinuxCPU{Shares: &shares},
			want: cpusetResult{Cpus: "0-1", Mems: "0", Shares: 512, Annotation: "cpus 0-1, mems 0"}},
		{name: "an explicit cpuset wins",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)}, host: oneNodeHost(),
			base: &specs.LinuxCPU{Cpus: "1", Shares: &shares},
			want: cpusetResult{Cpus: "1", Shares: 512, Annotation: "not applied: …"}},
		{name: "explicit memory nodes win",
			grant: manager.Grant{NUMANodes: []int{0}, CPUs: ids(0, 63)}, host: oneNodeHost(),
			base: &specs.LinuxCPU{Mems: "0"},
			want: cpusetResult{Mems: "0", Annotation: "not applied: …"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iso := &Isolator{policy: NUMABestEffort, hostCPUSet: func(context.Context) (*resources.CPUSet, error) { return tc.host, tc.err }}
			s := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{CPU: tc.base}}}
			opt, err := iso.cpuset(context.Background(), &tc.grant, testutil.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := oci.Apply(s, opt); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", AnnotationCPUSet, s.Annotations[AnnotationCPUSet])
			if diff := cmp.Diff(tc.want, result(s)); diff != "" {
				t.Errorf("(-want +got):\n%s\nannotation: %q", diff, s.Annotations[AnnotationCPUSet])
			}
		})
	}
}

// TestPrepareCPUSet: through Prepare, on a fake DGX A100 whose GPUs 0 and
// 1 are on NUMA node 3 with CPUs 48-49. A host with that node gives them
// to the container; the one-node host cannot (the container still gets
// its GPUs); policy none sets nothing.
func TestPrepareCPUSet(t *testing.T) {
	fourNodes := &resources.CPUSet{CPUs: ids(0, 63), Mems: []int{0, 1, 2, 3}}
	for n := range 4 {
		fourNodes.Nodes = append(fourNodes.Nodes, api.NUMANode{ID: n, CPUs: ids(16*n, 16*n+15), MemoryBytes: 64 << 30})
	}
	dev := fakeNodes(t)
	for _, tc := range []struct {
		name   string
		policy string
		host   *resources.CPUSet
		want   cpusetResult
	}{
		{"best-effort, the GPUs' node here", "", fourNodes, cpusetResult{Cpus: "48-49", Mems: "3", Annotation: "cpus 48-49, mems 3"}},
		{"best-effort, one-node host", NUMABestEffort, oneNodeHost(), cpusetResult{Annotation: "not applied: …"}},
		{"none", NUMANone, fourNodes, cpusetResult{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := managertest.New(t, managertest.DGXA100())
			m, err := manager.New(manager.Config{Dir: filepath.Join(h.Dir, "state"), Helper: h.Helper, ProcFS: h.ProcFS,
				SysFS: filepath.Join(h.Dir, "sys"), DriverRoot: filepath.Join(h.Dir, "driver"), DevRoot: dev})
			if err != nil {
				t.Fatal(err)
			}
			iso, err := New(m, Config{NUMAAffinity: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			iso.hostCPUSet = func(context.Context) (*resources.CPUSet, error) { return tc.host, nil }
			resp, err := prepare(iso, "c1", &api.GPURequest{Count: 2})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Resources != nil {
				t.Errorf("resources %+v: the cpuset is a SpecOpt, so that the cgroups isolator's CPU limits stay", resp.Resources)
			}
			if resp.Annotations[AnnotationNUMANodes] != "3" || resp.Annotations[AnnotationCPUs] != "48-49" {
				t.Errorf("annotations %v", resp.Annotations)
			}
			s := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{}}, Annotations: resp.Annotations}
			if err := oci.Apply(s, resp.SpecOpts...); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, result(s)); diff != "" {
				t.Errorf("(-want +got):\n%s\nannotation: %q", diff, s.Annotations[AnnotationCPUSet])
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		policy string
		want   error
	}{
		{"", nil},
		{NUMABestEffort, nil},
		{NUMANone, nil},
		{"single-numa-node", api.ErrInvalid},
		{"Best-Effort", api.ErrInvalid},
	} {
		if _, err := New(nil, Config{NUMAAffinity: tc.policy}); !errors.Is(err, tc.want) {
			t.Errorf("policy %q: %v, want %v", tc.policy, err, tc.want)
		}
	}
}
