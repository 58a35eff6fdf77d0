package resources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// cpusetGot is what the tests compare of a CPUSet.
type cpusetGot struct {
	CPUs, Mems  string
	Unavailable bool
}

// TestDetectCPUSet: what a container's cpuset may hold on each fixture,
// bounded by the agent's own cpuset and by the containers' parent cgroup
// (or its nearest existing ancestor), CPU-less nodes left out.
func TestDetectCPUSet(t *testing.T) {
	for _, tc := range []struct {
		name, fixture string
		files         map[string]string
		parent        string
		want          cpusetGot
	}{
		{name: "ac922: CPU-less GPU memory nodes are not memory nodes for containers", fixture: "power9-ac922",
			files:  map[string]string{"proc/self/status": "Cpus_allowed_list:\t0-127\nMems_allowed_list:\t0,8,252-255\n"},
			parent: "/caisson",
			want:   cpusetGot{CPUs: "0-127", Mems: "0,8"}},
		{name: "ac922: the parent cgroup's cpuset bounds", fixture: "power9-ac922",
			files: map[string]string{
				"sys/fs/cgroup/cpuset/caisson/cpuset.effective_cpus": "64-127\n",
				"sys/fs/cgroup/cpuset/caisson/cpuset.effective_mems": "8\n",
			},
			parent: "/caisson/not-made-yet",
			want:   cpusetGot{CPUs: "64-127", Mems: "8"}},
		{name: "ac922: a systemd-style parent bounds nothing", fixture: "power9-ac922",
			files: map[string]string{
				"sys/fs/cgroup/cpuset/caisson/cpuset.effective_cpus": "64-127\n",
			},
			parent: "caisson.slice:caisson:x",
			want:   cpusetGot{CPUs: "0-127", Mems: "0,8"}},
		{name: "v1: the agent's own cpuset", fixture: "cgroup-v1", parent: "/caisson",
			want: cpusetGot{CPUs: "0-1", Mems: "0"}},
		{name: "v1: the agent's effective memory nodes", fixture: "power9-ac922",
			files: map[string]string{"sys/fs/cgroup/cpuset/cpuset.effective_mems": "8,252-255\n"},
			want:  cpusetGot{CPUs: "0-127", Mems: "8"}},
		{name: "v2", fixture: "cgroup-v2", parent: "/caisson",
			want: cpusetGot{CPUs: "0-1", Mems: "0"}},
		{name: "v2 without the cpuset controller", fixture: "cgroup-v2", parent: "/caisson",
			files: map[string]string{"sys/fs/cgroup/cgroup.controllers": "cpu io memory pids\n"},
			want:  cpusetGot{CPUs: "0-1", Mems: "0", Unavailable: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, tc.fixture)
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cs, err := DetectCPUSet(context.Background(), fixtureConfig(dir), tc.parent)
			if err != nil {
				t.Fatal(err)
			}
			got := cpusetGot{CPUs: FormatList(cs.CPUs), Mems: FormatList(cs.Mems), Unavailable: cs.Unavailable != ""}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DetectCPUSet (-want +got):\n%s\nunavailable: %q", diff, cs.Unavailable)
			}
		})
	}
}

func TestDetectCPUSetMalformed(t *testing.T) {
	dir := copyFixture(t, "power9-ac922")
	p := filepath.Join(dir, "sys/fs/cgroup/cpuset/caisson/cpuset.effective_cpus")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("3-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DetectCPUSet(context.Background(), fixtureConfig(dir), "/caisson"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a malformed parent cpuset: %v, want api.ErrInvalid", err)
	}
}

func TestNodesOf(t *testing.T) {
	cs, err := DetectCPUSet(context.Background(), fixtureConfig(filepath.Join("testdata", "power9-ac922")), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{0, 8}, cs.NodesOf([]int{60, 61, 64})); diff != "" {
		t.Errorf("NodesOf (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{}, cs.NodesOf([]int{500})); diff != "" {
		t.Errorf("NodesOf an unknown CPU (-want +got):\n%s", diff)
	}
}

// TestDetectCPUSetLive sanity-checks DetectCPUSet on this machine: some
// online CPU and some memory node with CPUs, under a parent not made yet.
func TestDetectCPUSetLive(t *testing.T) {
	cs, err := DetectCPUSet(context.Background(), Config{}, "/caisson-test-not-made")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.CPUs) == 0 || len(cs.Mems) == 0 {
		t.Errorf("cpus %v, mems %v; want some of each", cs.CPUs, cs.Mems)
	}
	t.Logf("cpus %s, mems %s, unavailable %q", FormatList(cs.CPUs), FormatList(cs.Mems), cs.Unavailable)
}
