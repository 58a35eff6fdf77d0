package cgroups

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// Mode is the cgroup version the isolator drives.
type Mode int

// Modes. Auto detects the host's: a legacy or hybrid host is V1 (the resource
// controllers live in the v1 hierarchies), a unified host is V2.
const (
	Auto Mode = iota
	V1
	V2
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Host is what the cgroup values depend on besides the request.
type Host struct {
	// Mode is V1 or V2.
	Mode Mode
	// Swap is true when the kernel accounts swap (memory.memsw.* on v1,
	// memory.swap.max on v2): only then can a memory limit forbid swapping.
	Swap bool
}

// Limits of the values layer.
const (
	// CFSPeriod is the CFS period in microseconds (the kernel's default).
	CFSPeriod = 100000
	// MinQuota is the smallest CFS quota the kernel accepts, in microseconds.
	MinQuota = 1000
	// MinCPUs is the smallest CPU limit: MinQuota over CFSPeriod.
	MinCPUs = 0.01
	// MinMemory is the smallest memory limit or reservation, Docker's.
	MinMemory = 6 << 20

	minShares = 2
	maxShares = 262144
	maxWeight = 10000
)

// FileValue is one write to a cgroup control file.
type FileValue struct {
	// File is the control file's name ("cpu.shares").
	File string
	// Value is what is written to it.
	Value string
}

// Controller is the controller that owns the file: the file name up to the
// first dot. On v1 it names the hierarchy the file lives in.
func (v FileValue) Controller() string {
	c, _, _ := strings.Cut(v.File, ".")
	return c
}

// Shares is the v1 cpu.shares for a CPU limit: 1024 per CPU, at least 2 and
// at most 262144; 0 for no limit.
func Shares(cpus float64) uint64 {
	if !(cpus > 0) {
		return 0
	}
	s := math.Round(cpus * 1024)
	switch {
	case s < minShares:
		return minShares
	case s > maxShares:
		return maxShares
	}
	return uint64(s)
}

// Weight is the v2 cpu.weight for v1 shares, the linear conversion of runc
// (up to 1.3) and crun (up to 1.22): 1 + (shares-2)*9999/262142. 0 stays 0.
func Weight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= minShares:
		return 1
	case shares >= maxShares:
		return maxWeight
	}
	return 1 + ((shares-minShares)*(maxWeight-1))/(maxShares-minShares)
}

// Quota is the CFS quota in microseconds per CFSPeriod for a CPU limit, at
// least MinQuota; 0 for no limit.
func Quota(cpus float64) int64 {
	if !(cpus > 0) {
		return 0
	}
	q := int64(math.Round(cpus * CFSPeriod))
	if q < MinQuota {
		return MinQuota
	}
	return q
}

// Validate checks resources against the host: CPUs must be a number between
// MinCPUs and hostCPUs (0 means runtime.NumCPU()), memory and reservation at
// least MinMemory, the reservation no more than the limit, and nothing
// negative. Zero fields mean "no limit" and are valid. Errors wrap
// api.ErrInvalid.
func Validate(r api.Resources, hostCPUs int) error {
	if hostCPUs <= 0 {
		hostCPUs = runtime.NumCPU()
	}
	switch c := r.CPUs; {
	case math.IsNaN(c) || math.IsInf(c, 0) || c < 0:
		return &api.FieldError{Field: fieldCPUs, Err: fmt.Errorf("cpus %v is not a positive number: %w", c, api.ErrInvalid)}
	case c != 0 && (c < MinCPUs || c > float64(hostCPUs)):
		return &api.FieldError{Field: fieldCPUs, Err: fmt.Errorf("range of CPUs is from %.2f to %d.00, as there are only %d CPUs available: %w",
			MinCPUs, hostCPUs, hostCPUs, api.ErrInvalid)}
	}
	if err := checkMemory("memory limit", r.MemoryBytes); err != nil {
		return &api.FieldError{Field: fieldMemory, Err: err}
	}
	if err := checkMemory("memory reservation", r.MemoryReservationBytes); err != nil {
		return &api.FieldError{Field: fieldMemoryReservation, Err: err}
	}
	if r.MemoryBytes > 0 && r.MemoryReservationBytes > r.MemoryBytes {
		return errReservationAboveLimit(r.MemoryReservationBytes, r.MemoryBytes)
	}
	if r.PidsLimit < 0 {
		return &api.FieldError{Field: fieldPidsLimit, Err: fmt.Errorf("pids limit %d is negative: %w", r.PidsLimit, api.ErrInvalid)}
	}
	return nil
}

// The fields of a container spec that Validate checks, as api.FieldError
// names them.
const (
	fieldCPUs              = "resources.cpus"
	fieldMemory            = "resources.memory_bytes"
	fieldMemoryReservation = "resources.memory_reservation_bytes"
	fieldPidsLimit         = "resources.pids_limit"
)

// errReservationAboveLimit refuses a memory reservation above the limit.
func errReservationAboveLimit(res, limit int64) error {
	return &api.FieldError{Field: fieldMemoryReservation,
		Err: fmt.Errorf("memory reservation of %d bytes is above the memory limit of %d bytes: %w", res, limit, api.ErrInvalid)}
}

func checkMemory(what string, v int64) error {
	switch {
	case v < 0:
		return fmt.Errorf("%s of %d bytes is negative: %w", what, v, api.ErrInvalid)
	case v > 0 && v < MinMemory:
		return fmt.Errorf("%s of %d bytes is below the minimum of %d bytes (6 MiB): %w", what, v, MinMemory, api.ErrInvalid)
	}
	return nil
}

// SpecResources is the runtime-spec description of r, for the runtime to
// apply when it creates the cgroup; nil when r sets no limit.
//
// CPU: Shares and a CFS Quota over CFSPeriod. The spec speaks v1 shares on
// both versions; on v2 the runtime converts them to cpu.weight.
//
// Memory: Limit, and Swap equal to Limit (memory+swap = memory: no swap) when
// the host accounts swap; on v2 the runtime writes memory.swap.max = Swap -
// Limit = 0. The reservation is Reservation (memory.soft_limit_in_bytes) on
// v1, and memory.high in Unified on v2: runtimes map Reservation to
// memory.low there, a protection rather than a soft limit.
//
// Pids: Limit.
func SpecResources(h Host, r api.Resources) *specs.LinuxResources {
	var out specs.LinuxResources
	if r.CPUs > 0 {
		shares, quota, period := Shares(r.CPUs), Quota(r.CPUs), uint64(CFSPeriod)
		out.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period}
	}
	if r.MemoryBytes > 0 || (r.MemoryReservationBytes > 0 && h.Mode != V2) {
		out.Memory = &specs.LinuxMemory{}
	}
	if l := r.MemoryBytes; l > 0 {
		out.Memory.Limit = &l
		if h.Swap {
			swap := l
			out.Memory.Swap = &swap
		}
	}
	if res := r.MemoryReservationBytes; res > 0 {
		if h.Mode == V2 {
			out.Unified = map[string]string{"memory.high": strconv.FormatInt(res, 10)}
		} else {
			out.Memory.Reservation = &res
		}
	}
	if p := r.PidsLimit; p > 0 {
		out.Pids = &specs.LinuxPids{Limit: &p}
	}
	if out.CPU == nil && out.Memory == nil && out.Pids == nil && out.Unified == nil {
		return nil
	}
	return &out
}

// Values lists the cgroup files, and the values written to them, that the
// limits in r mean on the host, in the order a new cgroup takes them. Zero
// fields of r produce no value.
//
//	limit        v1                                   v2
//	cpus         cpu.shares = Shares(cpus)            cpu.weight = Weight(Shares(cpus))
//	             cpu.cfs_period_us = 100000           cpu.max = "Quota(cpus) 100000"
//	             cpu.cfs_quota_us = Quota(cpus)
//	memory       memory.limit_in_bytes                memory.max
//	             memory.memsw.limit_in_bytes = same   memory.swap.max = 0   (with swap accounting)
//	reservation  memory.soft_limit_in_bytes           memory.high
//	pids         pids.max                             pids.max
func Values(h Host, r api.Resources) []FileValue {
	var out []FileValue
	add := func(file string, v int64) { out = append(out, FileValue{File: file, Value: strconv.FormatInt(v, 10)}) }
	v2 := h.Mode == V2
	if r.CPUs > 0 {
		shares := Shares(r.CPUs)
		if v2 {
			add("cpu.weight", int64(Weight(shares)))
		} else {
			add("cpu.shares", int64(shares))
		}
		out = append(out, quotaValues(h, Quota(r.CPUs))...)
	}
	if l := r.MemoryBytes; l > 0 {
		if v2 {
			add("memory.max", l)
			if h.Swap {
				add("memory.swap.max", 0)
			}
		} else {
			add("memory.limit_in_bytes", l)
			if h.Swap {
				add("memory.memsw.limit_in_bytes", l)
			}
		}
	}
	if res := r.MemoryReservationBytes; res > 0 {
		if v2 {
			add("memory.high", res)
		} else {
			add("memory.soft_limit_in_bytes", res)
		}
	}
	if p := r.PidsLimit; p > 0 {
		add("pids.max", p)
	}
	return out
}

// quotaValues are the files that set a CFS quota over CFSPeriod. On v1
// the quota goes first: from a StartPeriod (longer) with its larger quota,
// the period first would give the cgroup, for a moment, ten times its
// share, which the kernel refuses under a parent with less.
func quotaValues(h Host, quota int64) []FileValue {
	if h.Mode == V2 {
		return []FileValue{{File: "cpu.max", Value: fmt.Sprintf("%d %d", quota, CFSPeriod)}}
	}
	return []FileValue{
		{File: "cpu.cfs_quota_us", Value: strconv.FormatInt(quota, 10)},
		{File: "cpu.cfs_period_us", Value: strconv.Itoa(CFSPeriod)},
	}
}

// updateOrder returns vs, the Values of a live update, in the order that
// keeps every intermediate state valid. On v1 the kernel requires
// memory.limit_in_bytes <= memory.memsw.limit_in_bytes at all times, so a
// memory limit above the current memory+swap limit (currentMemsw) is raised
// memsw first; otherwise (lowering) memory goes first. v2 has no such rule.
func updateOrder(h Host, vs []FileValue, currentMemsw uint64) []FileValue {
	if h.Mode == V2 {
		return vs
	}
	mem, memsw := -1, -1
	for i, v := range vs {
		switch v.File {
		case "memory.limit_in_bytes":
			mem = i
		case "memory.memsw.limit_in_bytes":
			memsw = i
		}
	}
	if mem < 0 || memsw < 0 {
		return vs
	}
	limit, err := strconv.ParseUint(vs[mem].Value, 10, 64)
	if err != nil || limit <= currentMemsw {
		return vs
	}
	out := append([]FileValue(nil), vs...)
	out[mem], out[memsw] = out[memsw], out[mem]
	return out
}
