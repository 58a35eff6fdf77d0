package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// Labels the agent sets on each task's container.
const (
	LabelTask    = "caisson.task"
	LabelSession = "caisson.session"
	LabelAgent   = "caisson.agent"
)

// Environment variables the agent sets in each task's container, besides
// PORT0, PORT1, ... (the granted host ports, in order).
const (
	EnvTaskID    = "CAISSON_TASK_ID"
	EnvSessionID = "CAISSON_SESSION_ID"
)

// containerSpec is the container a launch runs: its group's template with
// the grant applied. The grant decides the CPU and memory limits, exactly
// the GPUs (by UUID), and the host ports, on which the port mappings
// publish in order and which PORT0..N name.
func containerSpec(agentID string, l *api.TaskLaunch) (api.ContainerSpec, error) {
	s := l.Container
	s.Name = containerName(l.Task)
	s.AutoRemove = false // the agent reads the termination, then removes
	s.Resources.CPUs = l.Resources.CPUs
	s.Resources.MemoryBytes = l.Resources.MemoryBytes
	s.GPUs = nil
	if len(l.GPUs) > 0 {
		s.GPUs = &api.GPURequest{UUIDs: slices.Clone(l.GPUs)}
	}
	published := l.PortMaps
	if len(published) == 0 {
		published = l.Container.Ports
	}
	if len(published) > len(l.Ports) {
		return api.ContainerSpec{}, &api.FieldError{Field: "ports", Err: fmt.Errorf(
			"the task publishes %d ports, and was granted %d host ports: %w", len(published), len(l.Ports), api.ErrInvalid)}
	}
	s.Ports = nil
	for i, m := range published {
		m.HostPort = l.Ports[i]
		if m.Protocol == "" {
			m.Protocol = "tcp"
		}
		s.Ports = append(s.Ports, m)
	}
	set := map[string]string{EnvTaskID: l.Task, EnvSessionID: l.Session}
	names := []string{EnvTaskID, EnvSessionID}
	for i, p := range l.Ports {
		k := "PORT" + strconv.Itoa(i)
		set[k] = strconv.Itoa(p)
		names = append(names, k)
	}
	s.Env = slices.DeleteFunc(slices.Clone(l.Container.Env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ours := set[k]
		return ours
	})
	for _, k := range names {
		s.Env = append(s.Env, k+"="+set[k])
	}
	s.Labels = maps.Clone(l.Container.Labels)
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[LabelTask] = l.Task
	s.Labels[LabelSession] = l.Session
	s.Labels[LabelAgent] = agentID
	s.Entrypoint = slices.Clone(l.Container.Entrypoint)
	s.Command = slices.Clone(l.Container.Command)
	s.Networks = slices.Clone(l.Container.Networks)
	s.Volumes = slices.Clone(l.Container.Volumes)
	return s, nil
}

// containerName is a container name for a task: valid for the
// containerizer (letters, digits, '_', '.', '-', at most 128) and unique,
// as a hash of the whole ID ends it.
func containerName(task string) string {
	sum := sha256.Sum256([]byte(task))
	var b strings.Builder
	for _, r := range task {
		if b.Len() >= 96 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return "task-" + b.String() + "-" + hex.EncodeToString(sum[:6])
}
