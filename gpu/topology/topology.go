package topology

import (
	"fmt"
	"slices"

	"github.com/caisson/caisson/api"
)

// Level is the closest common PCIe ancestor of two GPUs, with NVML's values
// (nvmlGpuTopologyLevel_t).
type Level int

// PCIe levels, nearest first.
const (
	Internal   Level = 0  // the same board (a dual-GPU card)
	Single     Level = 10 // one PCIe switch
	Multiple   Level = 20 // several PCIe switches, no host bridge
	HostBridge Level = 30 // one host bridge
	Node       Level = 40 // one NUMA node (CPU)
	System     Level = 50 // across NUMA nodes (SMP interconnect)
)

// String names a level as nvidia-smi topo -m does.
func (l Level) String() string {
	switch l {
	case Internal:
		return "BOARD"
	case Single:
		return "PIX"
	case Multiple:
		return "PXB"
	case HostBridge:
		return "PHB"
	case Node:
		return "NODE"
	case System:
		return "SYS"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// score is go-gpuallocator's PCIe score of a level.
func (l Level) score() int {
	switch l {
	case Internal:
		return 60
	case Single:
		return 50
	case Multiple:
		return 40
	case HostBridge:
		return 30
	case Node:
		return 20
	}
	return 10
}

// NVLinkScore is what each NVLink between two GPUs adds to their pair.
const NVLinkScore = 100

// Device is one GPU as the allocator sees it.
type Device struct {
	Index int    `json:"index"`
	UUID  string `json:"uuid,omitempty"`
	// NUMANode is the node of the CPUs closest to the GPU (from its CPU
	// affinity); -1 when unknown.
	NUMANode int `json:"numa_node"`
	// CPULinks counts NVLinks to a CPU (POWER9's NVLink to the GPU).
	CPULinks int `json:"cpu_nvlinks,omitempty"`
}

// Topology is a machine's GPUs and how each pair is linked. Devices[i] is
// row and column i of both matrices.
type Topology struct {
	Devices []Device `json:"devices"`
	// NVLinks[i][j] is the number of NVLinks between GPUs i and j.
	NVLinks [][]int `json:"nvlinks"`
	// PCIe[i][j] is their closest common PCIe ancestor.
	PCIe [][]Level `json:"pcie"`
}

// Validate checks that the matrices are square, symmetric and as large as
// the device list, and that device indexes are their positions.
func (t *Topology) Validate() error {
	n := len(t.Devices)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("gpu topology: "+format+": %w", append(a, api.ErrInvalid)...)
	}
	if len(t.NVLinks) != n || len(t.PCIe) != n {
		return bad("%d devices but %d NVLink and %d PCIe rows", n, len(t.NVLinks), len(t.PCIe))
	}
	for i := range n {
		if t.Devices[i].Index != i {
			return bad("device %d has index %d", i, t.Devices[i].Index)
		}
		if len(t.NVLinks[i]) != n || len(t.PCIe[i]) != n {
			return bad("row %d is not %d long", i, n)
		}
		for j := range n {
			if t.NVLinks[i][j] != t.NVLinks[j][i] || t.PCIe[i][j] != t.PCIe[j][i] {
				return bad("links between %d and %d differ by direction", i, j)
			}
			if t.NVLinks[i][j] < 0 {
				return bad("negative NVLink count between %d and %d", i, j)
			}
		}
	}
	return nil
}

// PairScore is how well GPUs i and j are linked.
func (t *Topology) PairScore(i, j int) int {
	if i == j {
		return 0
	}
	return NVLinkScore*t.NVLinks[i][j] + t.PCIe[i][j].score()
}

// Score is the sum of the pair scores of a set.
func (t *Topology) Score(set []int) int {
	s := 0
	for a := range set {
		for b := a + 1; b < len(set); b++ {
			s += t.PairScore(set[a], set[b])
		}
	}
	return s
}

// Islands are the groups of GPUs connected by NVLink (directly or through
// others), each sorted, in order of their first GPU. A GPU without NVLink
// is an island of its own.
func (t *Topology) Islands() [][]int {
	n := len(t.Devices)
	seen := make([]bool, n)
	var out [][]int
	for i := range n {
		if seen[i] {
			continue
		}
		island, stack := []int{}, []int{i}
		seen[i] = true
		for len(stack) > 0 {
			g := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			island = append(island, g)
			for j := range n {
				if !seen[j] && t.NVLinks[g][j] > 0 {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
		slices.Sort(island)
		out = append(out, island)
	}
	return out
}

// NUMANodes lists the distinct NUMA nodes of a set's GPUs, sorted: the
// cpuset.mems (and, through their CPUs, cpuset.cpus) hint for a container
// holding them. Unknown nodes are left out.
func (t *Topology) NUMANodes(set []int) []int {
	var nodes []int
	for _, g := range set {
		if n := t.Devices[g].NUMANode; n >= 0 && !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// maxExhaustive bounds the number of candidate sets Allocate compares one
// by one; beyond it, sets are grown greedily.
const maxExhaustive = 200000

// Allocate picks n GPUs out of available: the set with the highest score,
// and among those the one leaving the other available GPUs with the highest
// score, then the lowest indexes. It returns the set sorted.
func (t *Topology) Allocate(available []int, n int) ([]int, error) {
	avail := slices.Clone(available)
	slices.Sort(avail)
	avail = slices.Compact(avail)
	for _, g := range avail {
		if g < 0 || g >= len(t.Devices) {
			return nil, fmt.Errorf("gpu %d is not on this machine (%d GPUs): %w", g, len(t.Devices), api.ErrInvalid)
		}
	}
	switch {
	case n <= 0:
		return nil, fmt.Errorf("a GPU request must be for at least one GPU, not %d: %w", n, api.ErrInvalid)
	case n > len(t.Devices):
		return nil, fmt.Errorf("%d GPUs asked for, this machine has %d: %w", n, len(t.Devices), api.ErrInvalid)
	case n > len(avail):
		return nil, fmt.Errorf("%d GPUs asked for, %d of %d free: %w", n, len(avail), len(t.Devices), api.ErrUnavailable)
	case n == len(avail):
		return avail, nil
	}
	if binomial(len(avail), n) > maxExhaustive {
		return t.greedy(avail, n), nil
	}
	best, bestScore, bestRest := []int(nil), -1, -1
	set := make([]int, n)
	var walk func(start, k int)
	walk = func(start, k int) {
		if k == n {
			s := t.Score(set)
			if s < bestScore {
				return
			}
			rest := t.Score(without(avail, set))
			if s > bestScore || rest > bestRest {
				best, bestScore, bestRest = slices.Clone(set), s, rest
			}
			return
		}
		for i := start; i <= len(avail)-(n-k); i++ {
			set[k] = avail[i]
			walk(i+1, k+1)
		}
	}
	walk(0, 0)
	return best, nil
}

// greedy grows a set from the best-linked pair, adding the GPU that adds
// most each time.
func (t *Topology) greedy(avail []int, n int) []int {
	set := []int{avail[0]}
	if n > 1 {
		bi, bj, bs := 0, 1, -1
		for i := range avail {
			for j := i + 1; j < len(avail); j++ {
				if s := t.PairScore(avail[i], avail[j]); s > bs {
					bi, bj, bs = i, j, s
				}
			}
		}
		set = []int{avail[bi], avail[bj]}
	}
	for len(set) < n {
		best, gain := -1, -1
		for _, g := range avail {
			if slices.Contains(set, g) {
				continue
			}
			s := 0
			for _, h := range set {
				s += t.PairScore(g, h)
			}
			if s > gain {
				best, gain = g, s
			}
		}
		set = append(set, best)
	}
	slices.Sort(set)
	return set
}

func without(all, set []int) []int {
	out := make([]int, 0, len(all))
	for _, g := range all {
		if !slices.Contains(set, g) {
			out = append(out, g)
		}
	}
	return out
}

func binomial(n, k int) int {
	if k > n-k {
		k = n - k
	}
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
		if r > maxExhaustive {
			return r
		}
	}
	return r
}
