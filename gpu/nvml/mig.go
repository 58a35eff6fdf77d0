//go:build cgo && linux

package nvml

import (
	"fmt"
	"math"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/caisson/caisson/gpu"
)

// migSupport says which of NVML's MIG functions the driver has. They came
// with R450; calling one an older driver lacks would abort the process, so
// each group is looked up before it is used.
type migSupport struct {
	// mode: GetMigMode.
	mode bool
	// devices: enumerating MIG devices and their GPU and compute
	// instance IDs.
	devices bool
	// attributes: GetAttributes (slices, multiprocessors, memory).
	attributes bool
	// profiles: the lookups from a MIG device to its GPU and compute
	// instance profiles, which name attributes such as +me.
	profiles bool
}

func migSupported(lib gonvml.Interface) migSupport {
	has := func(names ...string) bool {
		for _, n := range names {
			if call0(func() gonvml.Return { return symbol(lib, n) }) != gonvml.SUCCESS {
				return false
			}
		}
		return true
	}
	return migSupport{
		mode: has("nvmlDeviceGetMigMode"),
		devices: has("nvmlDeviceGetMigMode", "nvmlDeviceGetMaxMigDeviceCount", "nvmlDeviceGetMigDeviceHandleByIndex",
			"nvmlDeviceGetGpuInstanceId", "nvmlDeviceGetComputeInstanceId"),
		attributes: has("nvmlDeviceGetAttributes"),
		profiles: has("nvmlDeviceGetGpuInstanceById", "nvmlGpuInstanceGetInfo", "nvmlDeviceGetGpuInstanceProfileInfo",
			"nvmlGpuInstanceGetComputeInstanceById", "nvmlComputeInstanceGetInfo", "nvmlGpuInstanceGetComputeInstanceProfileInfo"),
	}
}

// migDevices lists the MIG devices of a GPU in MIG mode the way NVML
// exposes them: every index below GetMaxMigDeviceCount, where an index
// without a device (ERROR_NOT_FOUND, or any other failure) is skipped, as
// go-nvlib does. A device whose UUID or instance IDs cannot be read is
// left out: it could not be named or isolated.
func migDevices(parent gonvml.Device, p *gpu.Device, sup migSupport) []gpu.MIGDevice {
	n, ret := call(parent.GetMaxMigDeviceCount)
	if ret != gonvml.SUCCESS {
		return nil
	}
	var out []gpu.MIGDevice
	for i := range n {
		h, ret := call(func() (gonvml.Device, gonvml.Return) { return parent.GetMigDeviceHandleByIndex(i) })
		if ret != gonvml.SUCCESS || h == nil {
			continue
		}
		m := gpu.MIGDevice{ParentUUID: p.UUID, Index: i}
		if m.UUID, ret = call(h.GetUUID); ret != gonvml.SUCCESS {
			continue
		}
		gi, ret := call(h.GetGpuInstanceId)
		if ret != gonvml.SUCCESS {
			continue
		}
		ci, ret := call(h.GetComputeInstanceId)
		if ret != gonvml.SUCCESS {
			continue
		}
		m.GPUInstance, m.ComputeInstance = gi, ci
		var attrs gonvml.DeviceAttributes
		haveAttrs := false
		if sup.attributes {
			attrs, ret = call(h.GetAttributes)
			haveAttrs = ret == gonvml.SUCCESS
		}
		if mem, ret := call(h.GetMemoryInfo); ret == gonvml.SUCCESS {
			m.MemoryBytes = int64(mem.Total)
		} else if haveAttrs {
			m.MemoryBytes = int64(attrs.MemorySizeMB) << 20
		}
		if haveAttrs {
			m.Multiprocessors = int(attrs.MultiprocessorCount)
		}
		m.Profile = migProfile(parent, gi, ci, attrs, haveAttrs, uint64(p.MemoryBytes), sup)
		out = append(out, m)
	}
	return out
}

// migProfile names a MIG device's profile as go-nvlib does ("1g.5gb",
// "1c.3g.20gb", "1g.5gb+me"): from its GPU and compute instance profiles
// when the driver can look them up, else from its attributes (slice
// counts, memory), which name no extra attributes; "" when neither can be
// read.
func migProfile(parent gonvml.Device, gi, ci int, attrs gonvml.DeviceAttributes, haveAttrs bool, parentMemory uint64, sup migSupport) string {
	if sup.profiles {
		if giProfile, ciProfile, info, ok := instanceProfiles(parent, gi, ci); ok {
			g, okG := giSlices(giProfile)
			c, okC := ciSlices(ciProfile)
			memMB := info.MemorySizeMB
			if haveAttrs && attrs.MemorySizeMB != 0 {
				memMB = attrs.MemorySizeMB
			}
			if okG && okC {
				plus, minus := giAttributes(giProfile)
				return profileName(c, g, migMemoryGB(parentMemory, memMB), plus, minus)
			}
		}
	}
	if !haveAttrs || attrs.GpuInstanceSliceCount == 0 || attrs.ComputeInstanceSliceCount == 0 {
		return ""
	}
	return profileName(int(attrs.ComputeInstanceSliceCount), int(attrs.GpuInstanceSliceCount),
		migMemoryGB(parentMemory, attrs.MemorySizeMB), nil, nil)
}

// instanceProfiles finds the profile indexes (NVML's
// GPU_INSTANCE_PROFILE_* and COMPUTE_INSTANCE_PROFILE_*) of GPU instance
// gi and its compute instance ci: their infos name a profile ID, which is
// the driver's own and is matched against the ID of each profile index.
func instanceProfiles(parent gonvml.Device, gi, ci int) (giProfile, ciProfile int, info gonvml.GpuInstanceProfileInfo, ok bool) {
	giH, ret := call(func() (gonvml.GpuInstance, gonvml.Return) { return parent.GetGpuInstanceById(gi) })
	if ret != gonvml.SUCCESS || giH == nil {
		return 0, 0, info, false
	}
	giInfo, ret := call(giH.GetInfo)
	if ret != gonvml.SUCCESS {
		return 0, 0, info, false
	}
	giProfile = -1
	for i := range gonvml.GPU_INSTANCE_PROFILE_COUNT {
		p, ret := call(func() (gonvml.GpuInstanceProfileInfo, gonvml.Return) { return parent.GetGpuInstanceProfileInfo(i) })
		if ret == gonvml.SUCCESS && p.Id == giInfo.ProfileId {
			giProfile, info = i, p
			break
		}
	}
	ciH, ret := call(func() (gonvml.ComputeInstance, gonvml.Return) { return giH.GetComputeInstanceById(ci) })
	if giProfile < 0 || ret != gonvml.SUCCESS || ciH == nil {
		return 0, 0, info, false
	}
	ciInfo, ret := call(ciH.GetInfo)
	if ret != gonvml.SUCCESS {
		return 0, 0, info, false
	}
	for j := range gonvml.COMPUTE_INSTANCE_PROFILE_COUNT {
		p, ret := call(func() (gonvml.ComputeInstanceProfileInfo, gonvml.Return) {
			return giH.GetComputeInstanceProfileInfo(j, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		})
		if ret == gonvml.SUCCESS && p.Id == ciInfo.ProfileId {
			return giProfile, j, info, true
		}
	}
	return 0, 0, info, false
}

// giSlices is the number of compute slices of a GPU instance profile
// index, as go-nvlib counts them.
func giSlices(profile int) (int, bool) {
	switch profile {
	case gonvml.GPU_INSTANCE_PROFILE_1_SLICE, gonvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, gonvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2,
		gonvml.GPU_INSTANCE_PROFILE_1_SLICE_GFX, gonvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME, gonvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME:
		return 1, true
	case gonvml.GPU_INSTANCE_PROFILE_2_SLICE, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_REV1, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX,
		gonvml.GPU_INSTANCE_PROFILE_2_SLICE_NO_ME, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME:
		return 2, true
	case gonvml.GPU_INSTANCE_PROFILE_3_SLICE, gonvml.GPU_INSTANCE_PROFILE_3_SLICE_GFX:
		return 3, true
	case gonvml.GPU_INSTANCE_PROFILE_4_SLICE, gonvml.GPU_INSTANCE_PROFILE_4_SLICE_GFX:
		return 4, true
	case gonvml.GPU_INSTANCE_PROFILE_6_SLICE:
		return 6, true
	case gonvml.GPU_INSTANCE_PROFILE_7_SLICE:
		return 7, true
	case gonvml.GPU_INSTANCE_PROFILE_8_SLICE:
		return 8, true
	}
	return 0, false
}

// ciSlices is the number of compute slices of a compute instance profile
// index.
func ciSlices(profile int) (int, bool) {
	switch profile {
	case gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1:
		return 1, true
	case gonvml.COMPUTE_INSTANCE_PROFILE_2_SLICE:
		return 2, true
	case gonvml.COMPUTE_INSTANCE_PROFILE_3_SLICE:
		return 3, true
	case gonvml.COMPUTE_INSTANCE_PROFILE_4_SLICE:
		return 4, true
	case gonvml.COMPUTE_INSTANCE_PROFILE_6_SLICE:
		return 6, true
	case gonvml.COMPUTE_INSTANCE_PROFILE_7_SLICE, gonvml.COMPUTE_INSTANCE_PROFILE_7_SLICE_NVL:
		return 7, true
	case gonvml.COMPUTE_INSTANCE_PROFILE_8_SLICE:
		return 8, true
	}
	return 0, false
}

// MIG profile name attributes, spelled as go-nvlib spells them.
const (
	migAttributeMediaExtensions    = "me"
	migAttributeMediaExtensionsAll = "me.all"
	migAttributeGraphics           = "gfx"
)

// giAttributes are the attributes a GPU instance profile index adds to its
// name (+me, +me.all, +gfx) or takes away (-me).
func giAttributes(profile int) (plus, minus []string) {
	switch profile {
	case gonvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_REV1:
		return []string{migAttributeMediaExtensions}, nil
	case gonvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME:
		return []string{migAttributeMediaExtensionsAll}, nil
	case gonvml.GPU_INSTANCE_PROFILE_1_SLICE_GFX, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX,
		gonvml.GPU_INSTANCE_PROFILE_3_SLICE_GFX, gonvml.GPU_INSTANCE_PROFILE_4_SLICE_GFX:
		return []string{migAttributeGraphics}, nil
	case gonvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME, gonvml.GPU_INSTANCE_PROFILE_2_SLICE_NO_ME:
		return nil, []string{migAttributeMediaExtensions}
	}
	return nil, nil
}

// profileName is go-nvlib's MigProfileInfo.String: "<g>g.<gb>gb" when the
// compute instance is the whole GPU instance, else "<c>c.<g>g.<gb>gb", then
// "+attr,…" or "-attr,…".
func profileName(c, g, gb int, plus, minus []string) string {
	suffix := ""
	if len(plus) > 0 {
		suffix = "+" + strings.Join(plus, ",")
	}
	if len(minus) > 0 {
		suffix = "-" + strings.Join(minus, ",")
	}
	if c == g {
		return fmt.Sprintf("%dg.%dgb%s", g, gb, suffix)
	}
	return fmt.Sprintf("%dc.%dg.%dgb%s", c, g, gb, suffix)
}

// migMemoryGB is the GB of a profile name, as go-nvlib computes it: the
// instance's share of the GPU's memory rounded up to eighths, times the
// GPU's memory in whole GB (4864 MB of a 40 GB A100 is 5gb, 19968 MB 20gb).
func migMemoryGB(totalBytes, migMB uint64) int {
	const oneMB, oneGB = 1 << 20, 1 << 30
	if totalBytes == 0 {
		return int((migMB + 1023) / 1024)
	}
	frac := float64(migMB) * oneMB / float64(totalBytes)
	frac = math.Ceil(frac*8) / 8
	totalGB := float64((totalBytes + oneGB - 1) / oneGB)
	return int(math.Round(frac * totalGB))
}
