package agent

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func TestContainerSpec(t *testing.T) {
	template := func() api.TaskLaunch {
		return api.TaskLaunch{
			Task: "s1/train/0", Session: "s1", Group: "train",
			Resources: api.TaskResources{CPUs: 1.5, MemoryBytes: 1 << 30, GPUs: 2, Ports: 2},
			GPUs:      []string{"GPU-aaaa", "GPU-bbbb"},
			Ports:     []int{31000, 31005},
			Container: api.ContainerSpec{
				Name: "chosen-by-user", Image: "busybox", Command: []string{"sh", "-c", "serve"},
				Env:      []string{"A=1", "PORT0=9", "CAISSON_TASK_ID=forged"},
				Labels:   map[string]string{"team": "ml", LabelTask: "forged"},
				GPUs:     &api.GPURequest{Count: 8},
				Networks: []string{"net1"}, AutoRemove: true,
				Resources: api.Resources{CPUs: 8, MemoryBytes: 1, PidsLimit: 100},
				Ports:     []api.PortMapping{{ContainerPort: 1, HostPort: 1, Protocol: "tcp"}},
			},
			PortMaps: []api.PortMapping{{ContainerPort: 80}, {ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"}},
		}
	}
	full := api.ContainerSpec{
		Name: containerName("s1/train/0"), Image: "busybox", Command: []string{"sh", "-c", "serve"},
		Env: []string{"A=1", "CAISSON_TASK_ID=s1/train/0", "CAISSON_SESSION_ID=s1", "PORT0=31000", "PORT1=31005"},
		Labels: map[string]string{
			"team": "ml", LabelTask: "s1/train/0", LabelSession: "s1", LabelAgent: "agent-7",
		},
		GPUs:      &api.GPURequest{UUIDs: []string{"GPU-aaaa", "GPU-bbbb"}},
		Networks:  []string{"net1"},
		Resources: api.Resources{CPUs: 1.5, MemoryBytes: 1 << 30, PidsLimit: 100},
		Ports: []api.PortMapping{
			{ContainerPort: 80, HostPort: 31000, Protocol: "tcp"},
			{ContainerPort: 53, HostPort: 31005, Protocol: "udp", HostIP: "127.0.0.1"},
		},
	}
	for _, tc := range []struct {
		name    string
		edit    func(l *api.TaskLaunch)
		want    func(s *api.ContainerSpec)
		wantErr error
	}{
		{name: "the grant sets resources, GPUs, host ports, env and labels", edit: func(*api.TaskLaunch) {}, want: func(*api.ContainerSpec) {}},
		{
			name: "no GPUs granted: none, whatever the template asks",
			edit: func(l *api.TaskLaunch) { l.GPUs = nil },
			want: func(s *api.ContainerSpec) { s.GPUs = nil },
		},
		{
			name: "without port maps the template's ports publish",
			edit: func(l *api.TaskLaunch) { l.PortMaps = nil },
			want: func(s *api.ContainerSpec) {
				s.Ports = []api.PortMapping{{ContainerPort: 1, HostPort: 31000, Protocol: "tcp"}}
			},
		},
		{
			name: "ports granted but none published: only PORTn",
			edit: func(l *api.TaskLaunch) { l.PortMaps, l.Container.Ports = nil, nil },
			want: func(s *api.ContainerSpec) { s.Ports = nil },
		},
		{
			name:    "more ports published than granted",
			edit:    func(l *api.TaskLaunch) { l.Ports = l.Ports[:1] },
			wantErr: api.ErrInvalid,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := template()
			tc.edit(&l)
			before := l
			before.Container.Labels = map[string]string{"team": "ml", LabelTask: "forged"}
			got, err := containerSpec("agent-7", &l)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			want := full
			want.Labels = map[string]string{"team": "ml", LabelTask: "s1/train/0", LabelSession: "s1", LabelAgent: "agent-7"}
			tc.want(&want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("spec (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, l); d != "" {
				t.Errorf("the launch changed (-before +after):\n%s", d)
			}
		})
	}
}

// containerNameRE is the containerizer's rule for container names.
var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func TestContainerName(t *testing.T) {
	ids := []string{"s1/web/0", "s1_web_0", "s1-web-0", "s1/web/1", "ß/√/0", strings.Repeat("x/", 200) + "0", strings.Repeat("x/", 200) + "1"}
	seen := map[string]string{}
	for _, id := range ids {
		n := containerName(id)
		if !containerNameRE.MatchString(n) {
			t.Errorf("task %q: name %q is not a valid container name", id, n)
		}
		if other, ok := seen[n]; ok {
			t.Errorf("tasks %q and %q have one name, %q", id, other, n)
		}
		seen[n] = id
		if containerName(id) != n {
			t.Errorf("task %q: the name changes", id)
		}
	}
}

func TestFileName(t *testing.T) {
	ids := []string{"s1/web/0", "s1%2Fweb%2F0", "..", ".", "s1_web_0", strings.Repeat("a/", 300), strings.Repeat("a/", 300) + "b"}
	seen := map[string]string{}
	for _, id := range ids {
		n := fileName(id)
		if strings.ContainsRune(n, '/') || strings.HasPrefix(n, ".") || len(n) > 255 {
			t.Errorf("task %q: file name %q is not safe", id, n)
		}
		if other, ok := seen[n]; ok {
			t.Errorf("tasks %q and %q have one file name, %q", id, other, n)
		}
		seen[n] = id
	}
}
