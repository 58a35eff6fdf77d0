//go:build cgo && linux

package nvml

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// readMIGLayout reads simDir's MIG layout. No directory or no file: no GPU
// is in MIG mode.
func readMIGLayout(simDir string) (gpu.MIGLayout, error) {
	if simDir == "" {
		return nil, nil
	}
	path := filepath.Join(simDir, SimMIGFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("simulated MIG layout: %w", err)
	}
	var layout gpu.MIGLayout
	if err := json.Unmarshal(b, &layout); err != nil {
		return nil, fmt.Errorf("simulated MIG layout %s: want an object of GPU UUID to MIG profiles: %w: %w", path, err, api.ErrInvalid)
	}
	return layout, nil
}

// simMIGUUID is the UUID of a simulated MIG device: derived from its GPU,
// where its GPU instance is placed, its profile and its instance IDs, so
// that every process that applies the same layout sees the same UUIDs.
func simMIGUUID(parent string, start uint32, profile string, gi, ci uint32) string {
	h := sha256.Sum256(fmt.Appendf(nil, "caisson/%s/mig/%d/%s/%d/%d", parent, start, profile, gi, ci))
	return fmt.Sprintf("MIG-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// simProfile is a MIG profile a simulated GPU offers: a GPU instance
// profile, and the compute instance profile that fills it cis times.
type simProfile struct {
	name   string
	gi, ci int // GPU_INSTANCE_PROFILE_*, COMPUTE_INSTANCE_PROFILE_*
	giInfo gonvml.GpuInstanceProfileInfo
	ciInfo gonvml.ComputeInstanceProfileInfo
	cis    int
}

// simProfiles lists the MIG profiles of a simulated GPU's configuration, by
// profile index: each GPU instance profile with one compute instance of
// its size ("3g.20gb"), and with each smaller compute instance profile as
// many times as the GPU instance holds it ("1c.3g.20gb": three). Names
// are go-nvlib's; when two profile indexes have one name, the first wins
// (1g.5gb is GPU_INSTANCE_PROFILE_1_SLICE with COMPUTE_INSTANCE_PROFILE_1_SLICE).
func simProfiles(d *server.Device) []simProfile {
	cfg := d.Config.MIGProfiles
	var out []simProfile
	seen := map[string]bool{}
	for _, gi := range slices.Sorted(maps.Keys(cfg.GpuInstanceProfiles)) {
		info := cfg.GpuInstanceProfiles[gi]
		g, ok := giSlices(gi)
		if !ok {
			continue
		}
		plus, minus := giAttributes(gi)
		gb := migMemoryGB(d.MemoryInfo.Total, info.MemorySizeMB)
		cis := cfg.ComputeInstanceProfiles[gi]
		for _, ci := range slices.Sorted(maps.Keys(cis)) {
			c, ok := ciSlices(ci)
			if !ok || c > g {
				continue
			}
			p := simProfile{name: profileName(c, g, gb, plus, minus), gi: gi, ci: ci, giInfo: info, ciInfo: cis[ci], cis: 1}
			if c < g {
				p.cis = max(1, int(cis[ci].InstanceCount))
			}
			if !seen[p.name] {
				seen[p.name] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// placedGI is a GPU instance of a layout and where it goes.
type placedGI struct {
	p  simProfile
	at gonvml.GpuInstancePlacement
}

// planMIG places the GPU instances of a layout on a simulated GPU: each
// profile must exist, no GPU instance profile may be used more often than
// the GPU holds, their compute slices must fit, and each must get one of
// its profile's placements without overlapping another's memory slices
// (found by search, larger instances first). The result is in the
// layout's order. Errors say why the layout cannot be made.
func planMIG(d *server.Device, names []string) ([]placedGI, error) {
	offered := simProfiles(d)
	byName := map[string]simProfile{}
	var all []string
	for _, p := range offered {
		byName[p.name] = p
		all = append(all, p.name)
	}
	plan := make([]placedGI, len(names))
	perGI := map[int]int{}
	slicesUsed, maxSlices := 0, 0
	for _, info := range d.Config.MIGProfiles.GpuInstanceProfiles {
		maxSlices = max(maxSlices, int(info.SliceCount))
	}
	for i, n := range names {
		p, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("a %s has no MIG profile %s (it has %s)", d.Config.Name, n, strings.Join(all, ", "))
		}
		plan[i].p = p
		perGI[p.gi]++
		slicesUsed += int(p.giInfo.SliceCount)
	}
	for _, gi := range slices.Sorted(maps.Keys(perGI)) {
		info := d.Config.MIGProfiles.GpuInstanceProfiles[gi]
		if n := perGI[gi]; n > int(info.InstanceCount) {
			g, _ := giSlices(gi)
			plus, minus := giAttributes(gi)
			name := profileName(g, g, migMemoryGB(d.MemoryInfo.Total, info.MemorySizeMB), plus, minus)
			what := "GPU instances"
			if info.InstanceCount == 1 {
				what = "GPU instance"
			}
			return nil, fmt.Errorf("a %s holds at most %d %s of profile %s, the layout has %d", d.Config.Name, info.InstanceCount, what, name, n)
		}
	}
	if slicesUsed > maxSlices {
		return nil, fmt.Errorf("its GPU instances need %d compute slices, a %s has %d", slicesUsed, d.Config.Name, maxSlices)
	}
	// Larger instances first: they have the fewest placements.
	order := make([]int, len(plan))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(plan[b].p.giInfo.SliceCount, plan[a].p.giInfo.SliceCount)
	})
	var used []gonvml.GpuInstancePlacement
	overlaps := func(p gonvml.GpuInstancePlacement) bool {
		for _, u := range used {
			if p.Start < u.Start+u.Size && u.Start < p.Start+p.Size {
				return true
			}
		}
		return false
	}
	var place func(k int) bool
	place = func(k int) bool {
		if k == len(order) {
			return true
		}
		i := order[k]
		for _, at := range d.Config.MIGProfiles.GpuInstancePlacements[plan[i].p.gi] {
			if overlaps(at) {
				continue
			}
			used = append(used, at)
			plan[i].at = at
			if place(k + 1) {
				return true
			}
			used = used[:len(used)-1]
		}
		return false
	}
	if !place(0) {
		return nil, fmt.Errorf("its GPU instances cannot be placed on a %s's memory slices together", d.Config.Name)
	}
	return plan, nil
}

// simMIG is one MIG device of a simulated GPU.
type simMIG struct {
	*mock.Device
	uuid string
}

// simulateMIG applies simDir's MIG layout (SimMIGFile) to a simulated
// machine, through the NVML calls an administrator's tool makes (MIG mode
// on, GPU instances created at their placements, compute instances in
// them), and gives every GPU what go-nvml's mock server lacks: MIG device
// handles by index and by UUID (GetMaxMigDeviceCount,
// GetMigDeviceHandleByIndex, IsMigDeviceHandle,
// GetDeviceHandleFromMigDeviceHandle), their instance IDs, attributes and
// memory, and GPU and compute instances by ID. A MIG device is lost (its
// memory info fails) when faults names it or its GPU. A layout that names
// no GPU of the machine, or that the GPU cannot hold, is an error wrapping
// api.ErrInvalid.
func simulateMIG(srv *server.Server, simDir string, faults map[string]string) error {
	layout, err := readMIGLayout(simDir)
	if err != nil {
		return err
	}
	byUUID := map[string]*simMIG{}
	known := map[string]bool{}
	for i, nd := range srv.Devices {
		d, ok := nd.(*server.Device)
		if !ok {
			return fmt.Errorf("simulated GPU %d is a %T: %w", i, nd, api.ErrInvalid)
		}
		known[d.UUID] = true
		names, on := layout[d.UUID]
		var migs []*simMIG
		if on {
			plan, err := planMIG(d, names)
			if err != nil {
				return fmt.Errorf("simulated GPU %d (%s): MIG layout %s: %s: %w", i, d.UUID, strings.Join(names, ","), err, api.ErrInvalid)
			}
			if migs, err = createMIG(d, plan, faults); err != nil {
				return fmt.Errorf("simulated GPU %d (%s): %w", i, d.UUID, err)
			}
			for _, m := range migs {
				byUUID[m.uuid] = m
			}
		}
		maxDevices := len(migs)
		for _, info := range d.Config.MIGProfiles.GpuInstanceProfiles {
			maxDevices = max(maxDevices, int(info.InstanceCount))
		}
		d.IsMigDeviceHandleFunc = func() (bool, gonvml.Return) { return false, gonvml.SUCCESS }
		d.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return maxDevices, gonvml.SUCCESS }
		d.GetMigDeviceHandleByIndexFunc = func(index int) (gonvml.Device, gonvml.Return) {
			if index < 0 || index >= maxDevices {
				return nil, gonvml.ERROR_INVALID_ARGUMENT
			}
			if index >= len(migs) {
				return nil, gonvml.ERROR_NOT_FOUND
			}
			return migs[index], gonvml.SUCCESS
		}
		d.GetGpuInstanceByIdFunc = func(id int) (gonvml.GpuInstance, gonvml.Return) {
			d.RLock()
			defer d.RUnlock()
			for gi := range d.GpuInstances {
				if int(gi.Info.Id) == id {
					return gi, gonvml.SUCCESS
				}
			}
			return nil, gonvml.ERROR_NOT_FOUND
		}
	}
	for u := range layout {
		if !known[u] {
			return fmt.Errorf("simulated MIG layout %s names GPU %s, which this simulated machine does not have: %w",
				filepath.Join(simDir, SimMIGFile), u, api.ErrInvalid)
		}
	}
	byUUIDFunc := srv.DeviceGetHandleByUUIDFunc
	srv.DeviceGetHandleByUUIDFunc = func(uuid string) (gonvml.Device, gonvml.Return) {
		if m, ok := byUUID[uuid]; ok {
			return m, gonvml.SUCCESS
		}
		return byUUIDFunc(uuid)
	}
	return nil
}

// createMIG turns MIG mode on and makes the GPU and compute instances of
// plan, then returns the MIG devices by MIG index: by GPU instance ID, then
// compute instance ID.
func createMIG(d *server.Device, plan []placedGI, faults map[string]string) ([]*simMIG, error) {
	if ret, _ := d.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("MIG mode: %s", gonvml.ErrorString(ret))
	}
	placedBy := map[*server.GpuInstance]placedGI{}
	for _, pl := range plan {
		info, at := pl.p.giInfo, pl.at
		h, ret := d.CreateGpuInstanceWithPlacement(&info, &at)
		if ret != gonvml.SUCCESS {
			return nil, fmt.Errorf("create GPU instance %s: %s", pl.p.name, gonvml.ErrorString(ret))
		}
		gi, ok := h.(*server.GpuInstance)
		if !ok {
			return nil, fmt.Errorf("GPU instance %s is a %T", pl.p.name, h)
		}
		placedBy[gi] = pl
		ciInfo, ret := gi.GetComputeInstanceProfileInfo(pl.p.ci, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != gonvml.SUCCESS {
			return nil, fmt.Errorf("compute instance profile of %s: %s", pl.p.name, gonvml.ErrorString(ret))
		}
		for range pl.p.cis {
			if _, ret := gi.CreateComputeInstance(&ciInfo); ret != gonvml.SUCCESS {
				return nil, fmt.Errorf("create compute instance %s: %s", pl.p.name, gonvml.ErrorString(ret))
			}
		}
		gi.GetComputeInstanceByIdFunc = func(id int) (gonvml.ComputeInstance, gonvml.Return) {
			gi.RLock()
			defer gi.RUnlock()
			for ci := range gi.ComputeInstances {
				if int(ci.Info.Id) == id {
					return ci, gonvml.SUCCESS
				}
			}
			return nil, gonvml.ERROR_NOT_FOUND
		}
	}
	gis := slices.SortedFunc(maps.Keys(d.GpuInstances), func(a, b *server.GpuInstance) int { return cmp.Compare(a.Info.Id, b.Info.Id) })
	_, parentLost := faults[d.UUID]
	var out []*simMIG
	for _, gi := range gis {
		pl := placedBy[gi]
		cis := slices.SortedFunc(maps.Keys(gi.ComputeInstances), func(a, b *server.ComputeInstance) int { return cmp.Compare(a.Info.Id, b.Info.Id) })
		for _, ci := range cis {
			giID, ciID := gi.Info.Id, ci.Info.Id
			m := &simMIG{Device: &mock.Device{}, uuid: simMIGUUID(d.UUID, pl.at.Start, pl.p.name, giID, ciID)}
			_, lost := faults[m.uuid]
			lost = lost || parentLost
			attrs := gonvml.DeviceAttributes{
				MultiprocessorCount:       pl.p.ciInfo.MultiprocessorCount,
				SharedCopyEngineCount:     pl.p.ciInfo.SharedCopyEngineCount,
				SharedDecoderCount:        pl.p.ciInfo.SharedDecoderCount,
				SharedEncoderCount:        pl.p.ciInfo.SharedEncoderCount,
				SharedJpegCount:           pl.p.ciInfo.SharedJpegCount,
				SharedOfaCount:            pl.p.ciInfo.SharedOfaCount,
				GpuInstanceSliceCount:     pl.p.giInfo.SliceCount,
				ComputeInstanceSliceCount: pl.p.ciInfo.SliceCount,
				MemorySizeMB:              pl.p.giInfo.MemorySizeMB,
			}
			memory := gonvml.Memory{Total: attrs.MemorySizeMB << 20, Free: attrs.MemorySizeMB << 20}
			m.GetUUIDFunc = func() (string, gonvml.Return) { return m.uuid, gonvml.SUCCESS }
			m.IsMigDeviceHandleFunc = func() (bool, gonvml.Return) { return true, gonvml.SUCCESS }
			m.GetDeviceHandleFromMigDeviceHandleFunc = func() (gonvml.Device, gonvml.Return) { return d, gonvml.SUCCESS }
			m.GetGpuInstanceIdFunc = func() (int, gonvml.Return) { return int(giID), gonvml.SUCCESS }
			m.GetComputeInstanceIdFunc = func() (int, gonvml.Return) { return int(ciID), gonvml.SUCCESS }
			m.GetAttributesFunc = func() (gonvml.DeviceAttributes, gonvml.Return) { return attrs, gonvml.SUCCESS }
			m.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
				if lost {
					return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST
				}
				return memory, gonvml.SUCCESS
			}
			out = append(out, m)
		}
	}
	return out, nil
}
