package topology

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func all(t *Topology) []int {
	var out []int
	for i := range t.Devices {
		out = append(out, i)
	}
	return out
}

func TestPresets(t *testing.T) {
	for name, topo := range map[string]*Topology{"dgx1": DGX1Volta(), "a100": DGXA100(), "h100": DGXH100(), "b200": DGXB200(), "ac922": AC922()} {
		if err := topo.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if diff := cmp.Diff([][]int{{0, 1, 2}, {3, 4, 5}}, AC922().Islands()); diff != "" {
		t.Errorf("AC922 islands (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]int{{0, 1, 2, 3, 4, 5, 6, 7}}, DGX1Volta().Islands()); diff != "" {
		t.Errorf("DGX-1 islands (-want +got):\n%s", diff)
	}
}

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		topo  *Topology
		avail []int // nil: all
		n     int
		want  []int
	}{
		// NVSwitch: all pairs have 12 NVLinks; the pair behind one PCIe
		// switch wins.
		{"a100 pair", DGXA100(), nil, 2, []int{0, 1}},
		{"a100 pair, 0 busy", DGXA100(), []int{1, 2, 3, 4, 5, 6, 7}, 2, []int{2, 3}},
		// Four on one socket beat four across.
		{"a100 four", DGXA100(), nil, 4, []int{0, 1, 2, 3}},
		// DGX-1: the doubled NVLink pair behind one PCIe switch (2-3) rather
		// than a doubled pair across switches (0-3) or a single-link pair
		// behind one switch (0-1).
		{"dgx1 pair", DGX1Volta(), nil, 2, []int{2, 3}},
		{"dgx1 pair, 2 busy", DGX1Volta(), []int{0, 1, 3, 4, 5, 6, 7}, 2, []int{6, 7}},
		// Four: a fully NVLinked quad on one socket.
		{"dgx1 four", DGX1Volta(), nil, 4, []int{0, 1, 2, 3}},
		// AC922: a pair on one socket, and one GPU taken from the island
		// that is already broken, keeping the other whole.
		{"ac922 pair", AC922(), nil, 2, []int{0, 1}},
		{"ac922 one of an island already broken", AC922(), []int{1, 2, 3, 4, 5}, 1, []int{1}},
		{"ac922 three", AC922(), []int{0, 2, 3, 4, 5}, 3, []int{3, 4, 5}},
		{"everything", AC922(), nil, 6, []int{0, 1, 2, 3, 4, 5}},
	} {
		avail := tc.avail
		if avail == nil {
			avail = all(tc.topo)
		}
		got, err := tc.topo.Allocate(avail, tc.n)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	topo := DGXA100()
	for _, tc := range []struct {
		avail []int
		n     int
		want  error
	}{
		{all(topo), 9, api.ErrInvalid},
		{all(topo), 0, api.ErrInvalid},
		{[]int{0, 1}, 3, api.ErrUnavailable},
		{[]int{0, 8}, 1, api.ErrInvalid},
	} {
		if _, err := topo.Allocate(tc.avail, tc.n); !errors.Is(err, tc.want) {
			t.Errorf("Allocate(%v, %d) = %v, want %v", tc.avail, tc.n, err, tc.want)
		}
	}
}

func TestNUMANodes(t *testing.T) {
	topo := DGXA100()
	if diff := cmp.Diff([]int{1, 3}, topo.NUMANodes([]int{0, 2, 1})); diff != "" {
		t.Errorf("NUMA nodes (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	for _, m := range []string{"X NV1\nNV2 X", "X FOO\nFOO X", "Y SYS\nSYS X", "X SYS SYS\nSYS X", "X NVx\nNVx X"} {
		if _, err := Parse(m, []int{0, 0}, nil); err == nil {
			t.Errorf("Parse(%q) succeeded", m)
		}
	}
}

// FuzzAllocate: on any topology built from the fuzz input, an allocation is
// a set of distinct available GPUs of the size asked, at least as good as
// the greedy one.
func FuzzAllocate(f *testing.F) {
	f.Add([]byte{1, 2, 0, 3, 4, 0, 1, 2, 0, 0}, uint8(3), uint8(0xff))
	f.Fuzz(func(t *testing.T, links []byte, n uint8, mask uint8) {
		const size = 6
		topo := &Topology{}
		for i := range size {
			topo.Devices = append(topo.Devices, Device{Index: i, NUMANode: i / 3})
			topo.NVLinks = append(topo.NVLinks, make([]int, size))
			topo.PCIe = append(topo.PCIe, make([]Level, size))
		}
		k := 0
		for i := range size {
			for j := i + 1; j < size; j++ {
				var b byte
				if k < len(links) {
					b = links[k]
				}
				k++
				topo.NVLinks[i][j], topo.NVLinks[j][i] = int(b%4), int(b%4)
				l := Level(int(b/4%6) * 10)
				topo.PCIe[i][j], topo.PCIe[j][i] = l, l
			}
		}
		var avail []int
		for i := range size {
			if mask&(1<<i) != 0 {
				avail = append(avail, i)
			}
		}
		got, err := topo.Allocate(avail, int(n%7))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrUnavailable) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if len(got) != int(n%7) {
			t.Fatalf("asked for %d, got %v", n%7, got)
		}
		for i, g := range got {
			if !slices.Contains(avail, g) || (i > 0 && got[i-1] >= g) {
				t.Fatalf("allocation %v from %v", got, avail)
			}
		}
		if greedy := topo.greedy(avail, len(got)); len(got) > 0 && len(got) < len(avail) && topo.Score(got) < topo.Score(greedy) {
			t.Fatalf("allocation %v scores below the greedy %v", got, greedy)
		}
	})
}
