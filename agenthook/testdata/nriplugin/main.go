// Command nriplugin is the NRI plugin of the tests, written with NRI's
// stub. What it does is its name's (the executable's, after its index, as
// 10-env, or -name): see the behaviours below. Its configuration (the
// conf file of a pre-registered plugin, or -config) is JSON: dir is where
// it writes what the test reads back. A name that ends in "fail" (hangfail)
// asks, as its failure policy, that a request it fails to answer fails.
//
//	env     adds NRI_INJECTED=yes and the device node /dev/nri-zero (1:5)
//	gpu     adds /dev/nvidia3, a GPU's node nothing granted
//	limits  sets RLIMIT_NOFILE to 1024/2048 and the annotation example.com/nri=limits
//	hook    adds a createRuntime OCI hook that writes dir/hook-<id>
//	veto    refuses every container
//	hang    never answers a creation
//	crash   exits in the middle of a creation
//	events  writes each container event it gets to dir/events, a line each
//	sync    writes the containers it is synchronised with to dir/synced,
//	        then sets a 64 MiB memory limit on each, unsolicited
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type config struct {
	Dir string `json:"dir"`
}

type plugin struct {
	kind string
	cfg  config
	stub stub.Stub
}

// Configure reads the configuration and subscribes to the events the
// plugin's kind uses: a plugin that only adjusts creations, as most do,
// hears of nothing else.
func (p *plugin) Configure(_ context.Context, cfg, _, _ string) (api.EventMask, error) {
	if cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &p.cfg); err != nil {
			return 0, err
		}
	}
	switch p.kind {
	case "events", "sync":
		return 0, nil // every event it implements
	}
	var m api.EventMask
	m.Set(api.Event_CREATE_CONTAINER)
	return m, nil
}

func (p *plugin) write(file, line string) {
	if p.cfg.Dir == "" {
		return
	}
	f, err := os.OpenFile(filepath.Join(p.cfg.Dir, file), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

func (p *plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	if p.kind != "sync" {
		return nil, nil
	}
	for _, c := range ctrs {
		p.write("synced", c.GetId()+" "+c.GetState().String())
	}
	var updates []*api.ContainerUpdate
	for _, c := range ctrs {
		if c.GetState() != api.ContainerState_CONTAINER_RUNNING {
			continue
		}
		u := &api.ContainerUpdate{ContainerId: c.GetId()}
		u.SetLinuxMemoryLimit(64 << 20)
		updates = append(updates, u)
	}
	if len(updates) > 0 {
		go func() {
			failed, err := p.stub.UpdateContainers(updates)
			p.write("updated", fmt.Sprintf("failed=%d err=%v", len(failed), err))
		}()
	}
	return nil, nil
}

func (p *plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.event("CreateContainer", c)
	a := &api.ContainerAdjustment{}
	switch p.kind {
	case "env":
		a.AddEnv("NRI_INJECTED", "yes")
		a.AddDevice(&api.LinuxDevice{Path: "/dev/nri-zero", Type: "c", Major: 1, Minor: 5, FileMode: api.FileMode(0o666)})
	case "gpu":
		a.AddDevice(&api.LinuxDevice{Path: "/dev/nvidia3", Type: "c", Major: 195, Minor: 3})
	case "limits":
		a.AddRlimit("RLIMIT_NOFILE", 2048, 1024)
		a.AddAnnotation("example.com/nri", "limits")
	case "hook":
		a.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + filepath.Join(p.cfg.Dir, "hook-"+c.GetId())}}}})
	case "veto":
		return nil, nil, fmt.Errorf("containers named %s are not welcome here", c.GetName())
	case "hang":
		<-ctx.Done()
		select {} // the runtime's timeout, not this one's context, ends it
	case "crash":
		os.Exit(3)
	}
	return a, nil, nil
}

func (p *plugin) event(name string, c *api.Container) {
	if p.kind == "events" {
		p.write("events", name+" "+c.GetId())
	}
}

func (p *plugin) PostCreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.event("PostCreateContainer", c)
	return nil
}

func (p *plugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.event("StartContainer", c)
	return nil
}

func (p *plugin) PostStartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.event("PostStartContainer", c)
	return nil
}

func (p *plugin) UpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.event("UpdateContainer", c)
	return nil, nil
}

func (p *plugin) PostUpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.event("PostUpdateContainer", c)
	return nil
}

func (p *plugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.event("StopContainer", c)
	return nil, nil
}

func (p *plugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.event("RemoveContainer", c)
	return nil
}

func main() {
	name := flag.String("name", "", "the plugin's name, which says what it does; default: the executable's, after its index")
	idx := flag.String("idx", "", "its index, when it connects on its own")
	socket := flag.String("socket", "", "the runtime's socket, when it connects on its own")
	cfgJSON := flag.String("config", "", "its configuration, when it connects on its own")
	flag.Parse()
	p := &plugin{kind: *name}
	if p.kind == "" {
		base := filepath.Base(os.Args[0])
		if _, rest, ok := strings.Cut(base, "-"); ok {
			base = rest
		}
		p.kind = base
	}
	if *cfgJSON != "" {
		if err := json.Unmarshal([]byte(*cfgJSON), &p.cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fail := strings.HasSuffix(p.kind, "fail")
	p.kind = strings.TrimSuffix(p.kind, "fail")
	opts := []stub.Option{stub.WithFailurePolicy(&api.FailurePolicy{FailRequest: fail})}
	if *socket != "" {
		opts = append(opts, stub.WithSocketPath(*socket), stub.WithPluginName(p.kind), stub.WithPluginIdx(*idx))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p.stub = s
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
