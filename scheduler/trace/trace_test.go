package trace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

const dir = "testdata/openb-2023"

func TestLoadOpenB(t *testing.T) {
	all, err := LoadNodes(filepath.Join(dir, "openb_node_list_all_node.csv"))
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := LoadNodes(filepath.Join(dir, "openb_node_list_gpu_node.csv"))
	if err != nil {
		t.Fatal(err)
	}
	pods, err := LoadPods(filepath.Join(dir, "openb_pod_list_default.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// The counts of the trace's README and paper.
	if len(all) != 1523 || len(gpu) != 1213 || len(pods) != 8152 {
		t.Fatalf("got %d nodes, %d GPU nodes, %d pods; want 1523, 1213, 8152", len(all), len(gpu), len(pods))
	}
	gpus := 0
	for _, n := range gpu {
		gpus += n.GPUs
	}
	if gpus != 6212 {
		t.Errorf("the GPU nodes have %d GPUs, want 6212", gpus)
	}
	withGPU := 0
	for _, n := range all {
		if n.GPUs > 0 {
			withGPU++
		}
	}
	if withGPU != 1213 {
		t.Errorf("%d of all nodes have GPUs, want 1213", withGPU)
	}

	wantNodes := []Node{
		{Name: "openb-node-0000", CPUMilli: 32000, MemoryBytes: 262144 << 20},
		{Name: "openb-node-0000", CPUMilli: 64000, MemoryBytes: 262144 << 20, GPUs: 2, Model: "P100"},
	}
	if diff := cmp.Diff(wantNodes, []Node{all[0], gpu[0]}); diff != "" {
		t.Errorf("first nodes (-want +got):\n%s", diff)
	}

	wantPods := []Pod{
		{Name: "openb-pod-0000", CPUMilli: 12000, MemoryBytes: 16384 << 20, NumGPU: 1, GPUMilli: 1000, QoS: "LS", Phase: Running,
			CreatedAt: 0, DeletedAt: 12537496 * time.Second, ScheduledAt: 0, Scheduled: true},
		{Name: "openb-pod-0061", CPUMilli: 11908, MemoryBytes: 47104 << 20, NumGPU: 1, GPUMilli: 1000, QoS: "BE", Phase: Pending,
			CreatedAt: 10001278 * time.Second, DeletedAt: 10001403 * time.Second},
		{Name: "openb-pod-8151", CPUMilli: 3152, MemoryBytes: 5600 << 20, NumGPU: 1, GPUMilli: 590, QoS: "BE", Phase: Failed,
			CreatedAt: 12901761 * time.Second, DeletedAt: 12901792 * time.Second, ScheduledAt: 12901762 * time.Second, Scheduled: true},
	}
	if diff := cmp.Diff(wantPods, []Pod{pods[0], pods[61], pods[8151]}); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	phases := map[string]int{}
	multi := 0
	for _, p := range pods {
		phases[p.Phase]++
		if p.NumGPU > 1 {
			multi++
			if p.GPU() != int64(p.NumGPU)*1000 {
				t.Errorf("pod %s: %d GPUs ask for %d milli-GPUs", p.Name, p.NumGPU, p.GPU())
			}
		}
		if p.Scheduled == (p.Phase == Pending) {
			t.Errorf("pod %s: phase %s, scheduled %v", p.Name, p.Phase, p.Scheduled)
		}
	}
	if diff := cmp.Diff(map[string]int{Failed: 1870, Pending: 897, Running: 5193, Succeeded: 192}, phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if multi != 44+16+15 {
		t.Errorf("%d pods ask for several GPUs, want 75", multi)
	}
}

// TestReplayOpenB gives the whole trace to the core: it must take every
// node as an agent and every pod as a session. Nodes and pods go to two
// cores, so that the test checks what the core accepts without paying for
// placing 8,152 pods.
func TestReplayOpenB(t *testing.T) {
	nodes, err := LoadNodes(filepath.Join(dir, "openb_node_list_gpu_node.csv"))
	if err != nil {
		t.Fatal(err)
	}
	pods, err := LoadPods(filepath.Join(dir, "openb_pod_list_default.csv"))
	if err != nil {
		t.Fatal(err)
	}
	agents, sessions := scheduler.New(scheduler.Config{}), scheduler.New(scheduler.Config{})
	step := func(c *scheduler.Core, ev scheduler.Event) {
		t.Helper()
		if _, err := c.Step(ev); err != nil {
			t.Fatalf("the core refuses %T: %v", ev, err)
		}
	}
	consumers := scheduler.ConsumersSet{Consumers: []scheduler.ConsumerSpec{{Name: "openb"}}}
	step(agents, consumers)
	step(sessions, consumers)
	for _, n := range nodes {
		step(agents, scheduler.AgentAdded{Agent: n.Agent()})
	}
	for _, p := range pods {
		step(sessions, scheduler.SessionSubmitted{Session: p.Session("openb")})
	}
}

func TestConversions(t *testing.T) {
	n := Node{Name: "n1", CPUMilli: 96000, MemoryBytes: 1 << 39, GPUs: 2, Model: "V100M32"}
	wantAgent := scheduler.AgentSpec{
		ID:         "n1",
		Resources:  scheduler.Resources{scheduler.CPU: 96000, scheduler.Memory: 1 << 39, scheduler.GPU: 2000},
		Attributes: map[string]string{"gpu_model": "V100M32"},
		GPUs:       []scheduler.GPUDevice{{ID: "n1/gpu0", Model: "V100M32"}, {ID: "n1/gpu1", Model: "V100M32"}},
	}
	if diff := cmp.Diff(wantAgent, n.Agent()); diff != "" {
		t.Errorf("agent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(scheduler.AgentSpec{ID: "c", Resources: scheduler.Res(1000, 1)}, Node{Name: "c", CPUMilli: 1000, MemoryBytes: 1}.Agent()); diff != "" {
		t.Errorf("CPU agent (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		pod  Pod
		want scheduler.TaskGroup
	}{
		{"whole GPUs", Pod{NumGPU: 8, GPUMilli: 1000, CPUMilli: 1, GPUModels: []string{"G2", "G3"}},
			scheduler.TaskGroup{Resources: scheduler.Resources{scheduler.CPU: 1, scheduler.GPU: 8000}, GPUModels: []string{"G2", "G3"}}},
		{"one GPU", Pod{NumGPU: 1, GPUMilli: 1000, MemoryBytes: 5},
			scheduler.TaskGroup{Resources: scheduler.Resources{scheduler.Memory: 5, scheduler.GPU: 1000}}},
		{"GPU share", Pod{NumGPU: 1, GPUMilli: 460, CPUMilli: 6000, GPUModels: []string{"T4"}},
			scheduler.TaskGroup{Resources: scheduler.Resources{scheduler.CPU: 6000, scheduler.GPU: 460}, GPUModels: []string{"T4"}}},
		{"no GPU", Pod{CPUMilli: 2000, MemoryBytes: 1 << 30, GPUModels: []string{"T4"}},
			scheduler.TaskGroup{Resources: scheduler.Res(2000, 1<<30)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Name = "p"
			tc.want.Name, tc.want.Count = "pod", 1
			want := scheduler.SessionSpec{ID: "p", Consumer: "c", Kind: scheduler.KindPods, Groups: []scheduler.TaskGroup{tc.want}}
			if diff := cmp.Diff(want, tc.pod.Session("c")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	p := Pod{CreatedAt: 10 * time.Second, DeletedAt: 25 * time.Second}
	if p.Runtime() != 15*time.Second {
		t.Errorf("runtime %v, want 15s", p.Runtime())
	}
}

func TestHeader(t *testing.T) {
	const want = "openb-pod-0001,6000,12288,1,460,T4|P100,LS,Running,427061,12902960,427061"
	shuffled := "deletion_time,extra,name,gpu_spec,cpu_milli,memory_mib,num_gpu,gpu_milli,qos,pod_phase,creation_time,scheduled_time\n" +
		"12902960,x,openb-pod-0001,T4|P100,6000,12288,1,460,LS,Running,427061,427061\n"
	plain := podHeader + "\n" + want + "\n"
	a, err := ReadPods("plain.csv", strings.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadPods("shuffled.csv", strings.NewReader(shuffled))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("columns in another order read differently (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"T4", "P100"}, a[0].GPUModels); diff != "" {
		t.Errorf("gpu_spec (-want +got):\n%s", diff)
	}
	minimal := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time\np,1,0,0,0,5,6\n"
	c, err := ReadPods("minimal.csv", strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Pod{{Name: "p", CPUMilli: 1, CreatedAt: 5 * time.Second, DeletedAt: 6 * time.Second}}, c); diff != "" {
		t.Errorf("without the optional columns (-want +got):\n%s", diff)
	}
	bom, err := ReadNodes("bom.csv", strings.NewReader("\ufeffsn,cpu_milli,memory_mib,gpu\nn,1,1,0\n"))
	if err != nil || len(bom) != 1 {
		t.Errorf("a header with a byte order mark: %v, %v", bom, err)
	}
	empty, err := ReadPods("header-only.csv", strings.NewReader(podHeader+"\n"))
	if err != nil || len(empty) != 0 {
		t.Errorf("a header alone: %v, %v", empty, err)
	}
}

const (
	podHeader  = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"
	podRow     = "openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0"
	nodeHeader = "sn,cpu_milli,memory_mib,gpu,model"
	nodeRow    = "openb-node-0000,64000,262144,2,P100"
)

// rows is a file of a header and n good rows, with row k (1-based,
// line k+1) replaced by bad.
func rows(header, good string, n, k int, bad string) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := 1; i <= n; i++ {
		row := strings.Replace(good, "-0000,", fmt.Sprintf("-%04d,", i), 1)
		if i == k {
			row = bad
		}
		b.WriteString(row + "\n")
	}
	return b.String()
}

func TestBadPods(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		line   int
		column string
	}{
		{"cpu not a number", rows(podHeader, podRow, 20, 16, "p,x,16384,1,1000,,LS,Running,0,1,0"), 17, "cpu_milli"},
		{"cpu negative", rows(podHeader, podRow, 3, 2, "p,-5,16384,1,1000,,LS,Running,0,1,0"), 3, "cpu_milli"},
		{"cpu fraction", rows(podHeader, podRow, 3, 2, "p,1.5,16384,1,1000,,LS,Running,0,1,0"), 3, "cpu_milli"},
		{"memory empty", rows(podHeader, podRow, 3, 2, "p,1,,1,1000,,LS,Running,0,1,0"), 3, "memory_mib"},
		{"memory huge", rows(podHeader, podRow, 3, 2, "p,1,99999999999999999999,1,1000,,LS,Running,0,1,0"), 3, "memory_mib"},
		{"num_gpu not a number", rows(podHeader, podRow, 3, 1, "p,1,1,one,1000,,LS,Running,0,1,0"), 2, "num_gpu"},
		{"gpu_milli without gpu", rows(podHeader, podRow, 3, 1, "p,1,1,0,500,,LS,Running,0,1,0"), 2, "gpu_milli"},
		{"gpu_milli above one gpu", rows(podHeader, podRow, 3, 1, "p,1,1,1,1500,,LS,Running,0,1,0"), 2, "gpu_milli"},
		{"gpu_milli zero for one gpu", rows(podHeader, podRow, 3, 1, "p,1,1,1,0,,LS,Running,0,1,0"), 2, "gpu_milli"},
		{"gpu_milli share of several", rows(podHeader, podRow, 3, 1, "p,1,1,2,500,,LS,Running,0,1,0"), 2, "gpu_milli"},
		{"asks nothing", rows(podHeader, podRow, 3, 3, "p,0,0,0,0,,LS,Running,0,1,0"), 4, "cpu_milli"},
		{"empty model", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,T4||P100,LS,Running,0,1,0"), 2, "gpu_spec"},
		{"unknown phase", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Sleeping,0,1,0"), 2, "pod_phase"},
		{"creation missing", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Running,,1,0"), 2, "creation_time"},
		{"deletion missing", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Running,0,,0"), 2, "deletion_time"},
		{"deletion before creation", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Running,10,5,"), 2, "deletion_time"},
		{"scheduled before creation", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Running,10,20,5"), 2, "scheduled_time"},
		{"scheduled after deletion", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Running,10,20,25"), 2, "scheduled_time"},
		{"time not a number", rows(podHeader, podRow, 3, 1, "p,1,1,1,1000,,LS,Running,1e3,2000,"), 2, "creation_time"},
		{"no name", rows(podHeader, podRow, 3, 1, ",1,1,1,1000,,LS,Running,0,1,0"), 2, "name"},
		{"repeated name", rows(podHeader, podRow, 3, 3, strings.Replace(podRow, "-0000,", "-0001,", 1)), 4, "name"},
		{"missing column", strings.Replace(rows(podHeader, podRow, 3, 0, ""), ",deletion_time", "", 1), 1, "deletion_time"},
		{"repeated column", strings.Replace(rows(podHeader, podRow, 3, 0, ""), ",qos,", ",cpu_milli,", 1), 1, "cpu_milli"},
		{"too few fields", rows(podHeader, podRow, 3, 2, "p,1,1"), 3, ""},
		{"bad quote", rows(podHeader, podRow, 3, 2, `p,"1,1,1,1000,,LS,Running,0,1,0`), 3, ""},
		{"empty file", "", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-") + ".csv"
			pods, err := ReadPods(name, strings.NewReader(tc.file))
			checkErr(t, name, tc.line, tc.column, len(pods), err)
		})
	}
}

func TestBadNodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		line   int
		column string
	}{
		{"cpu not a number", rows(nodeHeader, nodeRow, 20, 16, "n,x,1,0,"), 17, "cpu_milli"},
		{"cpu zero", rows(nodeHeader, nodeRow, 3, 2, "n,0,1,0,"), 3, "cpu_milli"},
		{"memory negative", rows(nodeHeader, nodeRow, 3, 2, "n,1,-1,0,"), 3, "memory_mib"},
		{"gpu fraction", rows(nodeHeader, nodeRow, 3, 2, "n,1,1,0.5,T4"), 3, "gpu"},
		{"gpu too many", rows(nodeHeader, nodeRow, 3, 2, "n,1,1,5000,T4"), 3, "gpu"},
		{"no name", rows(nodeHeader, nodeRow, 3, 1, ",1,1,0,"), 2, "sn"},
		{"repeated name", rows(nodeHeader, nodeRow, 3, 2, strings.Replace(nodeRow, "-0000,", "-0001,", 1)), 3, "sn"},
		{"missing column", "sn,cpu_milli,gpu\nn,1,0\n", 1, "memory_mib"},
		{"too many fields", rows(nodeHeader, nodeRow, 3, 3, "n,1,1,0,,extra"), 4, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-") + ".csv"
			nodes, err := ReadNodes(name, strings.NewReader(tc.file))
			checkErr(t, name, tc.line, tc.column, len(nodes), err)
		})
	}
}

// checkErr checks that a read failed whole, with an *Error located at
// name:line and naming the column.
func checkErr(t *testing.T, name string, line int, column string, got int, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	if got != 0 {
		t.Errorf("%d rows came with the error", got)
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("error %q is not an *Error wrapping api.ErrInvalid", err)
	}
	want := Error{File: name, Line: line, Column: column}
	if diff := cmp.Diff(want, *e, cmpopts.IgnoreFields(Error{}, "Err")); diff != "" {
		t.Errorf("error %q is located otherwise (-want +got):\n%s", err, diff)
	}
	t.Log(err)
}

func TestLoadMissing(t *testing.T) {
	if _, err := LoadPods(filepath.Join(t.TempDir(), "nope.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pods: got %v, want a not-exist error", err)
	}
	if _, err := LoadNodes(filepath.Join(t.TempDir(), "nope.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nodes: got %v, want a not-exist error", err)
	}
}

// TestEmbedded checks the copy that ships with the program is the
// testdata's.
func TestEmbedded(t *testing.T) {
	nodes, pods, err := OpenB()
	if err != nil {
		t.Fatal(err)
	}
	wantNodes, err := LoadNodes(filepath.Join(dir, OpenBNodesFile))
	if err != nil {
		t.Fatal(err)
	}
	wantPods, err := LoadPods(filepath.Join(dir, OpenBPodsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1213 || len(pods) != 8152 || len(nodes) != len(wantNodes) || len(pods) != len(wantPods) {
		t.Fatalf("embedded %d nodes and %d pods, files %d and %d", len(nodes), len(pods), len(wantNodes), len(wantPods))
	}
	if nodes[100] != wantNodes[100] || pods[5000].Name != wantPods[5000].Name {
		t.Fatalf("embedded rows differ: %+v vs %+v", nodes[100], wantNodes[100])
	}
}
