package topology

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a matrix in the form of `nvidia-smi topo -m`: one row per
// GPU, "X" on the diagonal, NV<n> for n NVLinks (the PCIe level then being
// given by pcie), or a PCIe level name (BOARD, PIX, PXB, PHB, NODE, SYS).
// numa gives each GPU's NUMA node. With NVLinks, the pair's PCIe level is
// taken from pcie[i][j] when pcie is not nil, else SYS.
func Parse(matrix string, numa []int, pcie [][]Level) (*Topology, error) {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(matrix), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	n := len(rows)
	if len(numa) != n {
		return nil, fmt.Errorf("gpu topology: %d rows but %d NUMA nodes", n, len(numa))
	}
	t := &Topology{Devices: make([]Device, n), NVLinks: make([][]int, n), PCIe: make([][]Level, n)}
	for i, row := range rows {
		if len(row) != n {
			return nil, fmt.Errorf("gpu topology: row %d has %d entries, want %d", i, len(row), n)
		}
		t.Devices[i] = Device{Index: i, NUMANode: numa[i]}
		t.NVLinks[i] = make([]int, n)
		t.PCIe[i] = make([]Level, n)
		for j, cell := range row {
			switch {
			case i == j:
				if cell != "X" {
					return nil, fmt.Errorf("gpu topology: diagonal entry %d is %q, want X", i, cell)
				}
			case strings.HasPrefix(cell, "NV"):
				k, err := strconv.Atoi(cell[2:])
				if err != nil || k <= 0 {
					return nil, fmt.Errorf("gpu topology: entry %d,%d: %q is not NV<count>", i, j, cell)
				}
				t.NVLinks[i][j] = k
				t.PCIe[i][j] = System
				if pcie != nil {
					t.PCIe[i][j] = pcie[i][j]
				}
			default:
				l, ok := levelNames[cell]
				if !ok {
					return nil, fmt.Errorf("gpu topology: entry %d,%d: unknown link %q", i, j, cell)
				}
				t.PCIe[i][j] = l
			}
		}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

var levelNames = map[string]Level{"BOARD": Internal, "PIX": Single, "PXB": Multiple, "PHB": HostBridge, "NODE": Node, "SYS": System}

func mustParse(matrix string, numa []int, pcie [][]Level) *Topology {
	t, err := Parse(matrix, numa, pcie)
	if err != nil {
		panic(err)
	}
	return t
}

// DGX1Volta is a DGX-1 with eight V100s in a hybrid cube mesh: each GPU has
// six NVLinks, to four others (two of them doubled); GPUs 0-3 hang off CPU
// 0 (pairs behind one PCIe switch), 4-7 off CPU 1.
func DGX1Volta() *Topology {
	return mustParse(`
X   NV1 NV1 NV2 NV2 SYS SYS SYS
NV1 X   NV2 NV1 SYS NV2 SYS SYS
NV1 NV2 X   NV2 SYS SYS NV1 SYS
NV2 NV1 NV2 X   SYS SYS SYS NV1
NV2 SYS SYS SYS X   NV1 NV1 NV2
SYS NV2 SYS SYS NV1 X   NV2 NV1
SYS SYS NV1 SYS NV1 NV2 X   NV2
SYS SYS SYS NV1 NV2 NV1 NV2 X`, []int{0, 0, 0, 0, 1, 1, 1, 1}, socketPCIe(8, 4, 2))
}

// switched is an NVSwitch machine: every pair of its eight GPUs has links
// NVLinks; pairs share a PCIe switch, four GPUs share a socket.
func switched(links int, numa []int) *Topology {
	var b strings.Builder
	for i := range 8 {
		for j := range 8 {
			if i == j {
				b.WriteString("X ")
			} else {
				fmt.Fprintf(&b, "NV%d ", links)
			}
		}
		b.WriteString("\n")
	}
	return mustParse(b.String(), numa, socketPCIe(8, 4, 2))
}

// DGXA100 is a DGX A100: eight A100s, twelve NVLinks each through
// NVSwitches, so every pair is alike over NVLink; PCIe tells pairs apart
// (two GPUs per PCIe switch, NUMA nodes 3, 1, 7, 5 as the machine reports).
func DGXA100() *Topology { return switched(12, []int{3, 3, 1, 1, 7, 7, 5, 5}) }

// DGXH100 is a DGX H100: eight H100s, eighteen NVLinks each through
// NVSwitches.
func DGXH100() *Topology { return switched(18, []int{0, 0, 0, 0, 1, 1, 1, 1}) }

// DGXB200 is a DGX B200: eight B200s, eighteen fifth-generation NVLinks
// each through NVSwitches.
func DGXB200() *Topology { return switched(18, []int{0, 0, 0, 0, 1, 1, 1, 1}) }

// AC922 is an IBM Power System AC922 (8335-GTH) with six V100s: three per
// POWER9 socket (NUMA nodes 0 and 8), each pair on a socket joined by two
// NVLinks, and each GPU joined to its CPU by two more.
func AC922() *Topology {
	t := mustParse(`
X    NV2  NV2  SYS  SYS  SYS
NV2  X    NV2  SYS  SYS  SYS
NV2  NV2  X    SYS  SYS  SYS
SYS  SYS  SYS  X    NV2  NV2
SYS  SYS  SYS  NV2  X    NV2
SYS  SYS  SYS  NV2  NV2  X`, []int{0, 0, 0, 8, 8, 8}, socketPCIe(6, 3, 1))
	for i := range t.Devices {
		t.Devices[i].CPULinks = 2
	}
	return t
}

// socketPCIe is the PCIe matrix of n GPUs, perSocket to a CPU, perSwitch
// behind one PCIe switch (1: each on its own host bridge port).
func socketPCIe(n, perSocket, perSwitch int) [][]Level {
	m := make([][]Level, n)
	for i := range n {
		m[i] = make([]Level, n)
		for j := range n {
			switch {
			case i == j:
			case perSwitch > 1 && i/perSwitch == j/perSwitch:
				m[i][j] = Single
			case i/perSocket == j/perSocket:
				m[i][j] = Node
			default:
				m[i][j] = System
			}
		}
	}
	return m
}
