package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// group is a task group as the session file's minimal group gives it:
// one task of half a CPU running an image.
func group(name string, set func(*api.TaskGroup)) api.TaskGroup {
	g := api.TaskGroup{Name: name, Count: 1, Resources: api.TaskResources{CPUs: 0.5}, Container: api.ContainerSpec{Image: "busybox"}}
	if set != nil {
		set(&g)
	}
	return g
}

const minimalGroup = "  - name: g\n    resources: {cpus: 0.5}\n    image: busybox\n"

func TestParseSessionFile(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       api.SessionSpec
	}{
		{"minimal", "name: s\ngroups:\n" + minimalGroup,
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", nil)}}},
		{"session fields", "name: s\nconsumer: /eng/ml\npriority: 7\nkind: framework\npolicy: spread\nlabels: {app: spark-1}\ngroups:\n" + minimalGroup,
			api.SessionSpec{Name: "s", Consumer: "/eng/ml", Priority: 7, Kind: "framework", Policy: "spread", Labels: map[string]string{"app": "spark-1"},
				Groups: []api.TaskGroup{group("g", nil)}}},
		{"resources with sizes", `name: s
groups:
  - name: g
    count: 3
    min: 2
    max: 5
    resources: {cpus: 2, memory: 256m, disk: 1g, gpus: 0.25, ports: 2}
    image: busybox
`, api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) {
			g.Count, g.Min, g.Max = 3, 2, 5
			g.Resources = api.TaskResources{CPUs: 2, MemoryBytes: 256 << 20, DiskBytes: 1 << 30, GPUs: 0.25, Ports: 2}
		})}}},
		{"a size in bytes", "name: s\ngroups:\n  - name: g\n    resources: {memory: 1048576}\n    image: busybox\n",
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) {
				g.Resources = api.TaskResources{MemoryBytes: 1 << 20}
			})}}},
		{"count 0", "name: s\ngroups:\n  - name: g\n    count: 0\n    resources: {cpus: 0.5}\n    image: busybox\n",
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) { g.Count = 0 })}}},
		{"container fields", `name: s
groups:
  - name: g
    resources: {cpus: 0.5}
    image: oci:/srv/images/app:v2
    platform: linux/ppc64le
    command: [sh, -c, "echo $A"]
    entrypoint: []
    env: [A=1, B=x=y, C=]
    workdir: /w
    user: "1000:1000"
    hostname: h
    networks: [net1, net2]
    labels: {tier: web}
    kill_grace: 1m30s
    gpu_models: [A100]
    same_island: true
    constraints:
      - {attribute: zone, op: not_in, values: [b, c]}
`, api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) {
			g.Container = api.ContainerSpec{Image: "oci:/srv/images/app:v2", Platform: "linux/ppc64le", Command: []string{"sh", "-c", "echo $A"},
				Entrypoint: []string{}, Env: []string{"A=1", "B=x=y", "C="}, WorkingDir: "/w", User: "1000:1000", Hostname: "h",
				Networks: []string{"net1", "net2"}, Labels: map[string]string{"tier": "web"}}
			g.KillGrace = api.Duration(90 * time.Second)
			g.GPUModels, g.SameIsland = []string{"A100"}, true
			g.Constraints = []api.Constraint{{Attribute: "zone", Op: "not_in", Values: []string{"b", "c"}}}
		})}}},
		{"env as a mapping, in the file's order", "name: s\ngroups:\n  - name: g\n    resources: {cpus: 0.5}\n    image: busybox\n    env:\n      Z: 1\n      A: two words\n      M: ''\n",
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) { g.Container.Env = []string{"Z=1", "A=two words", "M="} })}}},
		{"volumes, both forms", `name: s
groups:
  - name: g
    resources: {cpus: 0.5}
    image: busybox
    volumes:
      - caisson/data:/data:ro
      - vendor/plugin:v1/logs:/logs
      - {driver: caisson, name: scratch, target: /scratch, options: {size: 1g}}
`, api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) {
			g.Container.Volumes = []api.VolumeMount{
				{Driver: "caisson", Name: "data", Target: "/data", ReadOnly: true},
				{Driver: "vendor/plugin:v1", Name: "logs", Target: "/logs"},
				{Driver: "caisson", Name: "scratch", Target: "/scratch", Options: map[string]string{"size": "1g"}},
			}
		})}}},
		{"ports, every form", `name: s
groups:
  - name: g
    resources: {cpus: 0.5, ports: 3}
    image: busybox
    networks: [caisson]
    ports: [8080, "53/udp", {container_port: 9090, protocol: sctp, host_ip: 127.0.0.1}]
`, api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) {
			g.Resources.Ports = 3
			g.Container.Networks = []string{"caisson"}
			g.Ports = []api.PortMapping{{ContainerPort: 8080, Protocol: "tcp"}, {ContainerPort: 53, Protocol: "udp"},
				{ContainerPort: 9090, Protocol: "sctp", HostIP: "127.0.0.1"}}
		})}}},
		{"rootfs and no image", "name: s\ngroups:\n  - name: a\n    resources: {cpus: 0.5}\n    rootfs: /srv/rootfs\n  - name: b\n    resources: {cpus: 0.5}\n    no_image: true\n",
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{
				group("a", func(g *api.TaskGroup) { g.Container = api.ContainerSpec{Rootfs: "/srv/rootfs"} }),
				group("b", func(g *api.TaskGroup) { g.Container = api.ContainerSpec{} }),
			}}},
		{"JSON", `{"name": "s", "groups": [{"name": "g", "resources": {"cpus": 0.5, "memory": "64m"}, "image": "busybox"}]}`,
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("g", func(g *api.TaskGroup) { g.Resources.MemoryBytes = 64 << 20 })}}},
		{"an alias", "name: s\ngroups:\n  - name: a\n    resources: &r {cpus: 0.5}\n    image: busybox\n  - name: b\n    resources: *r\n    image: busybox\n",
			api.SessionSpec{Name: "s", Groups: []api.TaskGroup{group("a", nil), group("b", nil)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSessionFile("job.yaml", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

// place is where a *fileError says a mistake is.
type place struct {
	Line  int
	Field string
}

func placeOf(t *testing.T, err error) place {
	t.Helper()
	var fe *fileError
	if !errors.As(err, &fe) {
		t.Fatalf("%v (%T) is no *fileError", err, err)
	}
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("%v does not match api.ErrInvalid", err)
	}
	if fe.File != "job.yaml" {
		t.Errorf("%v names file %q", err, fe.File)
	}
	return place{fe.Line, fe.Field}
}

// TestParseSessionFileRefuses: each mistake is refused with its line and
// the field's path in the file.
func TestParseSessionFileRefuses(t *testing.T) {
	head := "name: s\ngroups:\n  - name: g\n"
	for _, tc := range []struct {
		name, file string
		want       place
	}{
		{"empty", "", place{0, ""}},
		{"only a comment", "# nothing\n", place{0, ""}},
		{"syntax", "name: s\ngroups: [\n", place{2, ""}},
		{"tabs", "name: s\n\tgroups: []\n", place{2, ""}},
		{"two documents", "name: s\n---\nname: t\n", place{2, ""}},
		{"a list at the top", "- name: s\n", place{1, ""}},
		{"unknown key", "name: s\nnmae: t\n", place{2, "nmae"}},
		{"key twice", "name: s\nname: t\n", place{2, "name"}},
		{"no name", "groups:\n" + minimalGroup, place{0, "name"}},
		{"no groups", "name: s\n", place{0, "groups"}},
		{"groups empty", "name: s\ngroups: []\n", place{2, "groups"}},
		{"unknown group key", head + "    resources: {cpus: 1}\n    image: busybox\n    imgae: x\n", place{6, "groups[0].imgae"}},
		{"bad size", head + "    resources: {cpus: 1, memory: 1x}\n    image: busybox\n", place{4, "groups[0].resources.memory"}},
		{"size a list", head + "    resources:\n      memory: [1]\n    image: busybox\n", place{5, "groups[0].resources.memory"}},
		{"negative size", head + "    resources: {memory: -1m}\n    image: busybox\n", place{4, "groups[0].resources.memory"}},
		{"cpus a string", head + "    resources: {cpus: one}\n    image: busybox\n", place{4, "groups[0].resources.cpus"}},
		{"cpus infinite", head + "    resources: {cpus: .inf}\n    image: busybox\n", place{4, "groups[0].resources.cpus"}},
		{"cpus negative", head + "    resources:\n      cpus: -1\n    image: busybox\n", place{5, "groups[0].resources.cpus"}},
		{"count a fraction", head + "    count: 1.5\n    resources: {cpus: 1}\n    image: busybox\n", place{4, "groups[0].count"}},
		{"count huge", head + "    count: 99999999999\n    resources: {cpus: 1}\n    image: busybox\n", place{4, "groups[0].count"}},
		{"count negative", head + "    count: -1\n    resources: {cpus: 1}\n    image: busybox\n", place{4, "groups[0].count"}},
		{"count above max", head + "    count: 9\n    max: 3\n    resources: {cpus: 1}\n    image: busybox\n", place{4, "groups[0].count"}},
		{"no resources", head + "    image: busybox\n", place{3, "groups[0].resources"}},
		{"fraction of GPUs above one", head + "    resources:\n      cpus: 1\n      gpus: 1.5\n    image: busybox\n", place{6, "groups[0].resources.gpus"}},
		{"no root filesystem", head + "    resources: {cpus: 1}\n", place{3, "groups[0]"}},
		{"two root filesystems", head + "    resources: {cpus: 1}\n    image: busybox\n    rootfs: /r\n", place{3, "groups[0]"}},
		{"platform without an image", head + "    resources: {cpus: 1}\n    rootfs: /r\n    platform: linux/arm64\n", place{6, "groups[0].platform"}},
		{"null value", head + "    resources: {cpus: 1}\n    image:\n", place{5, "groups[0].image"}},
		{"command a string", head + "    resources: {cpus: 1}\n    image: busybox\n    command: echo hi\n", place{6, "groups[0].command"}},
		{"env without =", head + "    resources: {cpus: 1}\n    image: busybox\n    env: [A=1, B]\n", place{6, "groups[0].env[1]"}},
		{"env key with =", head + "    resources: {cpus: 1}\n    image: busybox\n    env: {A=B: 1}\n", place{6, "groups[0].env.A=B"}},
		{"env value a list", head + "    resources: {cpus: 1}\n    image: busybox\n    env:\n      A: [1]\n", place{7, "groups[0].env.A"}},
		{"volume without driver", head + "    resources: {cpus: 1}\n    image: busybox\n    volumes: [data:/data]\n", place{6, "groups[0].volumes[0]"}},
		{"volume host path", head + "    resources: {cpus: 1}\n    image: busybox\n    volumes: [/srv:/data]\n", place{6, "groups[0].volumes[0]"}},
		{"volume missing target", head + "    resources: {cpus: 1}\n    image: busybox\n    volumes:\n      - {driver: d, name: n}\n", place{7, "groups[0].volumes[0].target"}},
		{"volume unknown key", head + "    resources: {cpus: 1}\n    image: busybox\n    volumes:\n      - {driver: d, name: n, target: /t, ro: true}\n", place{7, "groups[0].volumes[0].ro"}},
		{"port out of range", head + "    resources: {cpus: 1, ports: 1}\n    image: busybox\n    ports: [70000]\n", place{6, "groups[0].ports[0]"}},
		{"port protocol", head + "    resources: {cpus: 1, ports: 1}\n    image: busybox\n    ports: [53/icmp]\n", place{6, "groups[0].ports[0]"}},
		{"port with host port", head + "    resources: {cpus: 1, ports: 1}\n    image: busybox\n    ports:\n      - {container_port: 80, host_port: 8080}\n", place{7, "groups[0].ports[0].host_port"}},
		{"more ports than granted", head + "    resources: {cpus: 1}\n    image: busybox\n    ports: [80]\n", place{6, "groups[0].ports"}},
		{"kill grace without unit", head + "    resources: {cpus: 1}\n    image: busybox\n    kill_grace: 30\n", place{6, "groups[0].kill_grace"}},
		{"kill grace negative", head + "    resources: {cpus: 1}\n    image: busybox\n    kill_grace: -1s\n", place{6, "groups[0].kill_grace"}},
		{"same island not a bool", head + "    resources: {cpus: 1}\n    image: busybox\n    same_island: yes\n", place{6, "groups[0].same_island"}},
		{"constraint op", head + "    resources: {cpus: 1}\n    image: busybox\n    constraints:\n      - {attribute: zone, op: eq, values: [a]}\n", place{6, "groups[0].constraints"}},
		{"kind", "name: s\nkind: daemon\ngroups:\n" + minimalGroup, place{2, "kind"}},
		{"policy", "name: s\npolicy: random\ngroups:\n" + minimalGroup, place{2, "policy"}},
		{"group name", "name: s\ngroups:\n  - name: a b\n    resources: {cpus: 1}\n    image: busybox\n", place{3, "groups[0].name"}},
		{"second group of the same name", "name: s\ngroups:\n" + minimalGroup + minimalGroup, place{6, "groups[1].name"}},
		{"the second group at fault", "name: s\ngroups:\n" + minimalGroup + "  - name: h\n    image: busybox\n", place{6, "groups[1].resources"}},
		{"merge key", "name: s\ngroups:\n  - <<: {name: g}\n", place{3, "groups[0].<<"}},
		{"labels a list", "name: s\nlabels: [a]\ngroups:\n" + minimalGroup, place{2, "labels"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSessionFile("job.yaml", []byte(tc.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if diff := cmp.Diff(tc.want, placeOf(t, err)); diff != "" {
				t.Errorf("place (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// TestAliasBomb: aliases that would multiply a small file into a hundred
// million values are refused once the values pass a bound, not expanded.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("consumers:\n  - &l0 {name: l0}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "  - &l%d {name: l%d, children: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	_, err := parseTreeFile("job.yaml", []byte(b.String()))
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("%v, want api.ErrInvalid", err)
	}
}

func TestParseTreeFile(t *testing.T) {
	want := api.ConsumerTree{Consumers: []api.Consumer{
		{Path: "/eng", Weight: 2, Owned: api.TaskResources{CPUs: 16, MemoryBytes: 64 << 30}},
		{Path: "/research", NoLend: true, Grace: api.Duration(time.Minute)},
		{Path: "/eng/ml", Owned: api.TaskResources{CPUs: 8, MemoryBytes: 32 << 30, GPUs: 4}, Limit: api.TaskResources{CPUs: 24}, Grace: api.Duration(30 * time.Second)},
		{Path: "/eng/web", Owned: api.TaskResources{CPUs: 4, MemoryBytes: 8 << 30}},
	}}
	for _, tc := range []struct{ name, file string }{
		{"nested", `consumers:
  - name: eng
    weight: 2
    owned: {cpus: 16, memory: 64g}
    children:
      - name: ml
        owned: {cpus: 8, memory: 32g, gpus: 4}
        limit: {cpus: 24}
        grace: 30s
      - path: /eng/web
        owned: {cpus: 4, memory: 8g}
  - name: research
    lend: false
    grace: 1m
`},
		{"flat, children first", `consumers:
  - {path: /eng/ml, owned: {cpus: 8, memory: 32g, gpus: 4}, limit: {cpus: 24}, grace: 30s}
  - {path: /eng, weight: 2, owned: {cpus: 16, memory: 64g}}
  - {path: /research, lend: false, grace: 1m}
  - {path: /eng/web, owned: {cpus: 4, memory: 8g}, lend: true}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTreeFile("job.yaml", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// Parents come before children; siblings keep the file's order.
			index := map[string]int{}
			for i, c := range got.Consumers {
				index[c.Path] = i
			}
			if index["/eng"] > index["/eng/ml"] || index["/eng"] > index["/eng/web"] {
				t.Errorf("a child before its parent: %v", got.Consumers)
			}
			sorted := api.ConsumerTree{Consumers: make([]api.Consumer, len(want.Consumers))}
			for _, c := range got.Consumers {
				for i, w := range want.Consumers {
					if w.Path == c.Path {
						sorted.Consumers[i] = c
					}
				}
			}
			if diff := cmp.Diff(want, sorted); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTreeFileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       place
	}{
		{"no consumers", "consumers: []\n", place{1, "consumers"}},
		{"nothing", "{}\n", place{0, "consumers"}},
		{"path and name", "consumers:\n  - {path: /a, name: a}\n", place{2, "consumers[0]"}},
		{"neither", "consumers:\n  - {weight: 1}\n", place{2, "consumers[0]"}},
		{"relative path", "consumers:\n  - path: eng\n", place{2, "consumers[0].path"}},
		{"root", "consumers:\n  - path: /\n", place{2, "consumers[0].path"}},
		{"bad name in a path", "consumers:\n  - path: /eng/m l\n", place{2, "consumers[0].path"}},
		{"empty name in a path", "consumers:\n  - path: /eng//ml\n", place{2, "consumers[0].path"}},
		{"bad name", "consumers:\n  - name: ../x\n", place{2, "consumers[0].name"}},
		{"no parent", "consumers:\n  - path: /eng\n  - path: /research/ml\n", place{3, "consumers[1].path"}},
		{"path not under its parent", "consumers:\n  - name: eng\n    children:\n      - path: /web\n", place{4, "consumers[0].children[0].path"}},
		{"twice", "consumers:\n  - path: /eng\n  - name: eng\n", place{3, "consumers[1]"}},
		{"negative weight", "consumers:\n  - {path: /eng, weight: -1}\n", place{2, "consumers[0].weight"}},
		{"negative gpus", "consumers:\n  - path: /eng\n    owned: {gpus: -2}\n", place{3, "consumers[0].owned.gpus"}},
		{"bad size", "consumers:\n  - path: /eng\n    limit: {memory: lots}\n", place{3, "consumers[0].limit.memory"}},
		{"lend not a bool", "consumers:\n  - {path: /eng, lend: no}\n", place{2, "consumers[0].lend"}},
		{"grace without unit", "consumers:\n  - {path: /eng, grace: 30}\n", place{2, "consumers[0].grace"}},
		{"unknown key", "consumers:\n  - path: /eng\n    own: {cpus: 1}\n", place{3, "consumers[0].own"}},
		{"unknown top key", "consumer:\n  - path: /eng\n", place{1, "consumer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTreeFile("job.yaml", []byte(tc.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if diff := cmp.Diff(tc.want, placeOf(t, err)); diff != "" {
				t.Errorf("place (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// TestExamples: the cluster examples in examples/ parse, so that they
// cannot rot.
func TestExamples(t *testing.T) {
	b, err := os.ReadFile("../../examples/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseSessionFile("examples/job.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) < 2 || s.Groups[1].Min == 0 || len(s.Groups[0].Ports) == 0 || len(s.Groups[1].Container.Volumes) == 0 {
		t.Errorf("examples/job.yaml no longer shows a gang, published ports and a volume: %+v", s)
	}
	b, err = os.ReadFile("../../examples/cluster-tree.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := parseTreeFile("examples/cluster-tree.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, c := range tree.Consumers {
		paths[c.Path] = true
	}
	if !paths[s.Consumer] {
		t.Errorf("examples/job.yaml runs under %s, which examples/cluster-tree.yaml does not have", s.Consumer)
	}
	// The scheduler takes the tree as it is, and the session under it.
	core := scheduler.New(scheduler.Config{})
	if _, err := core.Step(scheduler.ConsumersSet{Consumers: scheduler.ConsumersFrom(tree)}); err != nil {
		t.Errorf("the scheduler refuses examples/cluster-tree.yaml: %v", err)
	}
	if _, err := core.Step(scheduler.SessionSubmitted{Session: scheduler.SessionFrom("s", s.Consumer, "", s)}); err != nil {
		t.Errorf("the scheduler refuses examples/job.yaml: %v", err)
	}
}

// FuzzParseSessionFile: whatever the file, the parser does not panic; it
// either refuses it with a *fileError wrapping api.ErrInvalid, or gives a
// spec the scheduler's check accepts and JSON carries whole.
func FuzzParseSessionFile(f *testing.F) {
	if b, err := os.ReadFile("../../examples/job.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Add("name: s\ngroups:\n" + minimalGroup)
	f.Add(`{"name":"s","groups":[{"name":"g","resources":{"memory":"1g"},"no_image":true,"env":{"A":"1"},"ports":["53/udp"],"volumes":["d/n:/t:ro"]}]}`)
	f.Add("name: s\ngroups:\n  - name: a\n    resources: &r {cpus: 0.5}\n    image: x\n  - name: b\n    resources: *r\n    image: x\n")
	f.Add("a: &a [1]\nb: *a\n")
	f.Fuzz(func(t *testing.T, file string) {
		spec, err := parseSessionFile("job.yaml", []byte(file))
		if err != nil {
			var fe *fileError
			if !errors.As(err, &fe) || !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%v (%T): want a *fileError wrapping api.ErrInvalid", err, err)
			}
			return
		}
		if err := scheduler.CheckSession(spec); err != nil {
			t.Fatalf("accepted a spec the scheduler refuses: %v", err)
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		var back api.SessionSpec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(spec, back); diff != "" {
			t.Fatalf("JSON round trip (-parsed +back):\n%s", diff)
		}
	})
}
