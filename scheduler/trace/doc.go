// Package trace reads the Alibaba GPU cluster trace (openb, 2023) that the
// simulator replays: the nodes of a heterogeneous GPU cluster and the
// pods submitted to it, with their CPU, memory and (fractional) GPU
// requests and their lifetimes. It was published with "Beware of
// Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
// Gradient Descent" (Weng et al., USENIX ATC 2023); a copy of the files,
// with their source and licence, is in testdata/openb-2023, and the
// simulator uses it as its default trace.
//
//	openb_node_list_*.csv ──ReadNodes──▶ []Node ──Agent()────▶ scheduler.AgentSpec
//	openb_pod_list_*.csv  ──ReadPods───▶ []Pod  ──Session()──▶ scheduler.SessionSpec
//	                                            ──CreatedAt, Runtime()──▶ when to submit, how long it runs
//
// LoadNodes and LoadPods read at most MaxFileBytes of a file
// (userfile.Open): a FIFO works, /dev/zero or a directory is refused.
// Columns are found by their header name, in any order. Loading is all or
// nothing: a malformed row is an *Error that reads "file:line: column:
// what is wrong" and wraps api.ErrInvalid, and no rows come with it.
package trace
