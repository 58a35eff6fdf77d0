package trace

import (
	"bytes"
	_ "embed"
)

// The openb 2023 trace's GPU nodes and default pods ship with the
// program, so that a replay needs no files.
var (
	//go:embed testdata/openb-2023/openb_node_list_gpu_node.csv
	openbNodes []byte
	//go:embed testdata/openb-2023/openb_pod_list_default.csv
	openbPods []byte
)

// Names of the embedded files, as errors and reports name them.
const (
	OpenBNodesFile = "openb_node_list_gpu_node.csv"
	OpenBPodsFile  = "openb_pod_list_default.csv"
)

// OpenB returns the copy of the openb trace that ships with the program:
// its 1,213 GPU nodes and its 8,152 default pods.
func OpenB() ([]Node, []Pod, error) {
	nodes, err := ReadNodes(OpenBNodesFile, bytes.NewReader(openbNodes))
	if err != nil {
		return nil, nil, err
	}
	pods, err := ReadPods(OpenBPodsFile, bytes.NewReader(openbPods))
	if err != nil {
		return nil, nil, err
	}
	return nodes, pods, nil
}
