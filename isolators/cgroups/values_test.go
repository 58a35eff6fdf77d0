package cgroups

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

const mib = 1 << 20

func TestConversions(t *testing.T) {
	tests := []struct {
		cpus   float64
		shares uint64
		weight uint64
		quota  int64
	}{
		{cpus: 0, shares: 0, weight: 0, quota: 0},
		{cpus: 0.001, shares: 2, weight: 1, quota: MinQuota},
		{cpus: 0.01, shares: 10, weight: 1, quota: 1000},
		{cpus: 0.1, shares: 102, weight: 4, quota: 10000},
		{cpus: 0.25, shares: 256, weight: 10, quota: 25000},
		{cpus: 0.29, shares: 297, weight: 12, quota: 29000}, // 0.29*100000 is 28999.999...
		{cpus: 0.5, shares: 512, weight: 20, quota: 50000},
		{cpus: 1, shares: 1024, weight: 39, quota: 100000},
		{cpus: 1.5, shares: 1536, weight: 59, quota: 150000},
		{cpus: 2, shares: 2048, weight: 79, quota: 200000},
		{cpus: 64, shares: 65536, weight: 2500, quota: 6400000},
		{cpus: 256, shares: 262144, weight: 10000, quota: 25600000},
		{cpus: 1000, shares: 262144, weight: 10000, quota: 100000000},
	}
	for _, tt := range tests {
		if got := Shares(tt.cpus); got != tt.shares {
			t.Errorf("Shares(%v) = %d, want %d", tt.cpus, got, tt.shares)
		}
		if got := Weight(Shares(tt.cpus)); got != tt.weight {
			t.Errorf("Weight(Shares(%v)) = %d, want %d", tt.cpus, got, tt.weight)
		}
		if got := Quota(tt.cpus); got != tt.quota {
			t.Errorf("Quota(%v) = %d, want %d", tt.cpus, got, tt.quota)
		}
	}
}

// TestWeightMatchesRunc checks the conversion against runc's formula,
// 1 + ((shares-2)*9999)/262142, over the whole shares range.
func TestWeightMatchesRunc(t *testing.T) {
	for shares := uint64(2); shares <= 262144; shares++ {
		if got, want := Weight(shares), 1+((shares-2)*9999)/262142; got != want {
			t.Fatalf("Weight(%d) = %d, want %d", shares, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		r       api.Resources
		invalid bool
		field   string // the FieldError's, when invalid
	}{
		{name: "none", r: api.Resources{}},
		{name: "all", r: api.Resources{CPUs: 1.5, MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib, PidsLimit: 100}},
		{name: "min cpus", r: api.Resources{CPUs: 0.01}},
		{name: "all host cpus", r: api.Resources{CPUs: 4}},
		{name: "min memory", r: api.Resources{MemoryBytes: 6 * mib}},
		{name: "reservation equals limit", r: api.Resources{MemoryBytes: 64 * mib, MemoryReservationBytes: 64 * mib}},
		{name: "reservation alone", r: api.Resources{MemoryReservationBytes: 64 * mib}},
		{name: "negative cpus", r: api.Resources{CPUs: -1}, invalid: true, field: "resources.cpus"},
		{name: "NaN cpus", r: api.Resources{CPUs: math.NaN()}, invalid: true, field: "resources.cpus"},
		{name: "infinite cpus", r: api.Resources{CPUs: math.Inf(1)}, invalid: true, field: "resources.cpus"},
		{name: "too few cpus", r: api.Resources{CPUs: 0.001}, invalid: true, field: "resources.cpus"},
		{name: "more cpus than the host", r: api.Resources{CPUs: 4.5}, invalid: true, field: "resources.cpus"},
		{name: "negative memory", r: api.Resources{MemoryBytes: -1}, invalid: true, field: "resources.memory_bytes"},
		{name: "memory below 6 MiB", r: api.Resources{MemoryBytes: 6*mib - 1}, invalid: true, field: "resources.memory_bytes"},
		{name: "reservation below 6 MiB", r: api.Resources{MemoryReservationBytes: 1 * mib}, invalid: true, field: "resources.memory_reservation_bytes"},
		{name: "negative reservation", r: api.Resources{MemoryReservationBytes: -5}, invalid: true, field: "resources.memory_reservation_bytes"},
		{name: "reservation above limit", r: api.Resources{MemoryBytes: 64 * mib, MemoryReservationBytes: 65 * mib}, invalid: true, field: "resources.memory_reservation_bytes"},
		{name: "negative pids", r: api.Resources{PidsLimit: -1}, invalid: true, field: "resources.pids_limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.r, 4)
			if tt.invalid != errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Validate(%+v) = %v, want invalid: %v", tt.r, err, tt.invalid)
			}
			if !tt.invalid && err != nil {
				t.Fatalf("Validate(%+v) = %v", tt.r, err)
			}
			var fe *api.FieldError
			if tt.invalid && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Errorf("Validate(%+v) = %v, want a FieldError about %s", tt.r, err, tt.field)
			}
		})
	}
}

func TestValues(t *testing.T) {
	all := api.Resources{CPUs: 0.5, MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib, PidsLimit: 64}
	tests := []struct {
		name string
		host Host
		r    api.Resources
		want []FileValue
	}{
		{name: "v1 none", host: Host{Mode: V1, Swap: true}, r: api.Resources{}, want: nil},
		{name: "v2 none", host: Host{Mode: V2, Swap: true}, r: api.Resources{}, want: nil},
		{
			name: "v1 all", host: Host{Mode: V1, Swap: true}, r: all,
			want: []FileValue{
				{"cpu.shares", "512"},
				{"cpu.cfs_quota_us", "50000"},
				{"cpu.cfs_period_us", "100000"},
				{"memory.limit_in_bytes", "67108864"},
				{"memory.memsw.limit_in_bytes", "67108864"},
				{"memory.soft_limit_in_bytes", "33554432"},
				{"pids.max", "64"},
			},
		},
		{
			name: "v1 without swap accounting", host: Host{Mode: V1}, r: all,
			want: []FileValue{
				{"cpu.shares", "512"},
				{"cpu.cfs_quota_us", "50000"},
				{"cpu.cfs_period_us", "100000"},
				{"memory.limit_in_bytes", "67108864"},
				{"memory.soft_limit_in_bytes", "33554432"},
				{"pids.max", "64"},
			},
		},
		{
			name: "v2 all", host: Host{Mode: V2, Swap: true}, r: all,
			want: []FileValue{
				{"cpu.weight", "20"},
				{"cpu.max", "50000 100000"},
				{"memory.max", "67108864"},
				{"memory.swap.max", "0"},
				{"memory.high", "33554432"},
				{"pids.max", "64"},
			},
		},
		{
			name: "v2 without swap accounting", host: Host{Mode: V2}, r: api.Resources{MemoryBytes: 6 * mib},
			want: []FileValue{{"memory.max", "6291456"}},
		},
		{
			name: "v1 cpus only", host: Host{Mode: V1, Swap: true}, r: api.Resources{CPUs: 2},
			want: []FileValue{{"cpu.shares", "2048"}, {"cpu.cfs_quota_us", "200000"}, {"cpu.cfs_period_us", "100000"}},
		},
		{
			name: "v2 tiny cpus", host: Host{Mode: V2}, r: api.Resources{CPUs: 0.01},
			want: []FileValue{{"cpu.weight", "1"}, {"cpu.max", "1000 100000"}},
		},
		{
			name: "v1 reservation only", host: Host{Mode: V1, Swap: true}, r: api.Resources{MemoryReservationBytes: 128 * mib},
			want: []FileValue{{"memory.soft_limit_in_bytes", "134217728"}},
		},
		{
			name: "v2 pids only", host: Host{Mode: V2}, r: api.Resources{PidsLimit: 1},
			want: []FileValue{{"pids.max", "1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Values(tt.host, tt.r)); diff != "" {
				t.Errorf("Values (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileValueController(t *testing.T) {
	for file, want := range map[string]string{
		"cpu.shares": "cpu", "cpu.max": "cpu", "memory.memsw.limit_in_bytes": "memory", "pids.max": "pids",
	} {
		if got := (FileValue{File: file}).Controller(); got != want {
			t.Errorf("Controller of %s = %q, want %q", file, got, want)
		}
	}
}

func TestUpdateOrder(t *testing.T) {
	v1 := Host{Mode: V1, Swap: true}
	files := func(vs []FileValue) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.File)
		}
		return out
	}
	tests := []struct {
		name   string
		host   Host
		r      api.Resources
		memsw  uint64
		wanted []string
	}{
		{
			name: "v1 raise writes memsw first", host: v1, r: api.Resources{CPUs: 1, MemoryBytes: 128 * mib}, memsw: 64 * mib,
			wanted: []string{"cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "memory.memsw.limit_in_bytes", "memory.limit_in_bytes"},
		},
		{
			name: "v1 lower writes memory first", host: v1, r: api.Resources{MemoryBytes: 32 * mib, PidsLimit: 5}, memsw: 64 * mib,
			wanted: []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "pids.max"},
		},
		{
			name: "v1 same limit", host: v1, r: api.Resources{MemoryBytes: 64 * mib}, memsw: 64 * mib,
			wanted: []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"},
		},
		{
			name: "v1 from unlimited memsw", host: v1, r: api.Resources{MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib}, memsw: math.MaxInt64,
			wanted: []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"},
		},
		{
			name: "v1 without swap accounting", host: Host{Mode: V1}, r: api.Resources{MemoryBytes: 128 * mib}, memsw: 0,
			wanted: []string{"memory.limit_in_bytes"},
		},
		{
			name: "v2 keeps the order", host: Host{Mode: V2, Swap: true}, r: api.Resources{MemoryBytes: 128 * mib, MemoryReservationBytes: 64 * mib}, memsw: 0,
			wanted: []string{"memory.max", "memory.swap.max", "memory.high"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := Values(tt.host, tt.r)
			got := updateOrder(tt.host, vs, tt.memsw)
			if diff := cmp.Diff(tt.wanted, files(got)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(files(Values(tt.host, tt.r)), files(vs)); diff != "" {
				t.Errorf("updateOrder changed its input (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSpecResources(t *testing.T) {
	all := api.Resources{CPUs: 0.5, MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib, PidsLimit: 64}
	cpu := &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000)}
	tests := []struct {
		name string
		host Host
		r    api.Resources
		want *specs.LinuxResources
	}{
		{name: "v1 none", host: Host{Mode: V1, Swap: true}, want: nil},
		{name: "v2 none", host: Host{Mode: V2, Swap: true}, want: nil},
		{
			name: "v1 all", host: Host{Mode: V1, Swap: true}, r: all,
			want: &specs.LinuxResources{
				CPU:    cpu,
				Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Swap: ptr[int64](64 * mib), Reservation: ptr[int64](32 * mib)},
				Pids:   &specs.LinuxPids{Limit: ptr[int64](64)},
			},
		},
		{
			name: "v1 without swap accounting", host: Host{Mode: V1}, r: all,
			want: &specs.LinuxResources{
				CPU:    cpu,
				Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Reservation: ptr[int64](32 * mib)},
				Pids:   &specs.LinuxPids{Limit: ptr[int64](64)},
			},
		},
		{
			name: "v2 all", host: Host{Mode: V2, Swap: true}, r: all,
			want: &specs.LinuxResources{
				CPU:     cpu,
				Memory:  &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Swap: ptr[int64](64 * mib)},
				Pids:    &specs.LinuxPids{Limit: ptr[int64](64)},
				Unified: map[string]string{"memory.high": "33554432"},
			},
		},
		{
			name: "v1 reservation only", host: Host{Mode: V1, Swap: true}, r: api.Resources{MemoryReservationBytes: 32 * mib},
			want: &specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: ptr[int64](32 * mib)}},
		},
		{
			name: "v2 reservation only", host: Host{Mode: V2, Swap: true}, r: api.Resources{MemoryReservationBytes: 32 * mib},
			want: &specs.LinuxResources{Unified: map[string]string{"memory.high": "33554432"}},
		},
		{
			name: "v2 cpus only", host: Host{Mode: V2}, r: api.Resources{CPUs: 3},
			want: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr[uint64](3072), Quota: ptr[int64](300000), Period: ptr[uint64](100000)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, SpecResources(tt.host, tt.r)); diff != "" {
				t.Errorf("SpecResources (-want +got):\n%s", diff)
			}
		})
	}
}

// pureIsolator is an isolator that needs no host, for the parts that touch
// no cgroup.
func pureIsolator(t *testing.T, h Host) *Isolator {
	return &Isolator{parent: "/caisson", mountpoint: "/nonexistent", host: h, cpus: 4, log: testutil.Logger(t)}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name    string
		host    Host
		id      string
		r       api.Resources
		want    isolators.PrepareResponse
		invalid bool
	}{
		{
			name: "no limits", host: Host{Mode: V1, Swap: true}, id: "c1",
			want: isolators.PrepareResponse{CgroupsPath: "/caisson/c1"},
		},
		{
			name: "v1 memory", host: Host{Mode: V1, Swap: true}, id: "c2", r: api.Resources{MemoryBytes: 32 * mib},
			want: isolators.PrepareResponse{
				CgroupsPath: "/caisson/c2",
				Resources:   &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](32 * mib), Swap: ptr[int64](32 * mib)}},
			},
		},
		{
			name: "v2 reservation", host: Host{Mode: V2}, id: "c3", r: api.Resources{MemoryReservationBytes: 32 * mib},
			want: isolators.PrepareResponse{
				CgroupsPath: "/caisson/c3",
				Resources:   &specs.LinuxResources{Unified: map[string]string{"memory.high": "33554432"}},
				Namespaces:  []specs.LinuxNamespace{{Type: specs.CgroupNamespace}},
			},
		},
		{
			// Below DeferQuotaBelow the quota waits for Isolate, in an annotation.
			name: "small cpu quota over a long period", host: Host{Mode: V1}, id: "c5", r: api.Resources{CPUs: 0.1},
			want: isolators.PrepareResponse{
				CgroupsPath: "/caisson/c5",
				Resources:   &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(Shares(0.1)), Quota: ptr[int64](100000), Period: ptr[uint64](StartPeriod)}},
				Annotations: map[string]string{AnnotationCPUQuota: "10000"},
			},
		},
		{
			name: "half a cpu set by the runtime", host: Host{Mode: V1}, id: "c6", r: api.Resources{CPUs: 0.5},
			want: isolators.PrepareResponse{
				CgroupsPath: "/caisson/c6",
				Resources:   &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(Shares(0.5)), Quota: ptr[int64](50000), Period: ptr[uint64](CFSPeriod)}},
			},
		},
		{name: "too many cpus", host: Host{Mode: V1}, id: "c4", r: api.Resources{CPUs: 5}, invalid: true},
		{name: "id with slash", host: Host{Mode: V1}, id: "a/b", invalid: true},
		{name: "id dot-dot", host: Host{Mode: V1}, id: "..", invalid: true},
		{name: "empty id", host: Host{Mode: V1}, id: "", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp isolators.PrepareResponse
			err := pureIsolator(t, tt.host).Prepare(context.Background(), &isolators.PrepareRequest{
				ContainerID: tt.id, Spec: api.ContainerSpec{Resources: tt.r},
			}, &resp)
			if tt.invalid {
				if !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("Prepare = %v, want an error wrapping api.ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, resp); diff != "" {
				t.Errorf("PrepareResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCgroupPath(t *testing.T) {
	spec := func(p string) *specs.Spec { return &specs.Spec{Linux: &specs.Linux{CgroupsPath: p}} }
	iso := pureIsolator(t, Host{Mode: V1})
	tests := []struct {
		name string
		spec *specs.Spec
		want string
	}{
		{name: "no spec", want: "/caisson/c"},
		{name: "spec without linux", spec: &specs.Spec{}, want: "/caisson/c"},
		{name: "spec path", spec: spec("/old-parent/c"), want: "/old-parent/c"},
		{name: "spec path of another container", spec: spec("/old-parent/other"), want: "/caisson/c"},
		{name: "root", spec: spec("/"), want: "/caisson/c"},
		{name: "relative", spec: spec("caisson/c"), want: "/caisson/c"},
		{name: "unclean", spec: spec("/a/../c"), want: "/caisson/c"},
		{name: "systemd form", spec: spec("system.slice:caisson:c"), want: "/caisson/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := iso.cgroupPath("c", tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("cgroupPath = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadParent(t *testing.T) {
	for _, parent := range []string{"/", "relative", "/a/../b", "/a/", "slice:x:y"} {
		if _, err := New(Config{Parent: parent}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("New(Parent %q) = %v, want an error wrapping api.ErrInvalid", parent, err)
		}
	}
}

func TestStatus(t *testing.T) {
	iso := pureIsolator(t, Host{Mode: V2})
	tests := []struct {
		name string
		req  isolators.StatusRequest
		want string
	}{
		{name: "parent", req: isolators.StatusRequest{ContainerID: "c"}, want: "/caisson/c"},
		{
			name: "spec path",
			req:  isolators.StatusRequest{ContainerID: "c", Spec: &specs.Spec{Linux: &specs.Linux{CgroupsPath: "/elsewhere/c"}}},
			want: "/elsewhere/c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp isolators.StatusResponse
			if err := iso.Status(context.Background(), &tt.req, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.CgroupPath != tt.want {
				t.Errorf("CgroupPath = %q, want %q", resp.CgroupPath, tt.want)
			}
		})
	}
}
