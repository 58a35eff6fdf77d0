package main

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/yamlnode"
	"github.com/caisson/caisson/scheduler"
)

// The session file (caisson submit) and the consumer tree (caisson
// consumer apply): what each holds, how it becomes its wire type, and
// its checks. docs/cluster.md describes both, field by field.

// Limits on what the commands read: the API's limits on the bodies they
// become (docs/api.md).
const (
	maxSessionFile = 1 << 20
	maxTreeFile    = 4 << 20
)

// sessionFile is a session file as written.
type sessionFile struct {
	Name     string            `yaml:"name"`
	Consumer string            `yaml:"consumer"`
	Priority int               `yaml:"priority"`
	Kind     string            `yaml:"kind"`
	Policy   string            `yaml:"policy"`
	Labels   map[string]string `yaml:"labels"`
	Groups   []groupFile       `yaml:"groups"`
}

// groupFile is a task group: how many tasks, what each asks for, and the
// container each runs.
type groupFile struct {
	Name        string            `yaml:"name"`
	Count       *int              `yaml:"count"`
	Min         int               `yaml:"min"`
	Max         int               `yaml:"max"`
	Resources   resourcesFile     `yaml:"resources"`
	Image       string            `yaml:"image"`
	Platform    string            `yaml:"platform"`
	Rootfs      string            `yaml:"rootfs"`
	NoImage     bool              `yaml:"no_image"`
	Command     []string          `yaml:"command"`
	Entrypoint  *[]string         `yaml:"entrypoint"`
	Env         envValue          `yaml:"env"`
	Workdir     string            `yaml:"workdir"`
	User        string            `yaml:"user"`
	Hostname    string            `yaml:"hostname"`
	Networks    []string          `yaml:"networks"`
	Volumes     []volumeValue     `yaml:"volumes"`
	Ports       []portValue       `yaml:"ports"`
	Constraints []constraintFile  `yaml:"constraints"`
	GPUModels   []string          `yaml:"gpu_models"`
	SameIsland  bool              `yaml:"same_island"`
	KillGrace   durationValue     `yaml:"kill_grace"`
	Labels      map[string]string `yaml:"labels"`
}

type constraintFile struct {
	Attribute string   `yaml:"attribute"`
	Op        string   `yaml:"op"`
	Values    []string `yaml:"values"`
}

// resourcesFile is what a task asks for, or a consumer owns or is
// limited to; sizes as Docker writes them.
type resourcesFile struct {
	CPUs   float64   `yaml:"cpus"`
	Memory sizeValue `yaml:"memory"`
	Disk   sizeValue `yaml:"disk"`
	GPUs   float64   `yaml:"gpus"`
	Ports  int       `yaml:"ports"`
}

// wire converts the resources, refusing negative amounts.
func (r resourcesFile) wire(d *yamlDecoder, p string) (api.TaskResources, error) {
	for _, f := range []struct {
		key string
		v   float64
	}{{"cpus", r.CPUs}, {"gpus", r.GPUs}, {"ports", float64(r.Ports)}} {
		if f.v < 0 {
			return api.TaskResources{}, d.errAt(join(p, f.key), fmt.Errorf("%g is negative", f.v))
		}
	}
	return api.TaskResources{CPUs: r.CPUs, MemoryBytes: int64(r.Memory), DiskBytes: int64(r.Disk), GPUs: r.GPUs, Ports: r.Ports}, nil
}

// sizeValue is a size as api.ParseSize reads it: 512m, 2g, or bytes.
type sizeValue int64

func (s *sizeValue) decodeNode(d *yamlDecoder, n *yaml.Node, p string) error {
	v, err := d.scalar(n, p)
	if err != nil {
		return err
	}
	if v.ShortTag() != "!!str" && v.ShortTag() != "!!int" {
		return d.errf(n, p, "%s is not a size such as 512m or 2g", yamlnode.Describe(v))
	}
	size, err := api.ParseSize(v.Value)
	if err != nil {
		return &fileError{File: d.file, Line: n.Line, Field: p, Err: err}
	}
	*s = sizeValue(size)
	return nil
}

// durationValue is a Go duration, 30s or 1m30s, not negative.
type durationValue api.Duration

func (t *durationValue) decodeNode(d *yamlDecoder, n *yaml.Node, p string) error {
	v, err := d.scalar(n, p)
	if err != nil {
		return err
	}
	dur, err := time.ParseDuration(v.Value)
	switch {
	case err != nil:
		return d.errf(n, p, "%s is not a duration: write it with a unit, as 30s or 1m30s", yamlnode.Describe(v))
	case dur < 0:
		return d.errf(n, p, "%s is negative", v.Value)
	}
	*t = durationValue(dur)
	return nil
}

// envValue is a container's environment: a list of KEY=VALUE, or a
// mapping of keys to values.
type envValue []string

func (e *envValue) decodeNode(d *yamlDecoder, n *yaml.Node, p string) error {
	if n.Kind == yaml.MappingNode {
		var m map[string]string
		if err := d.stringMap(n, p, reflectValue(&m)); err != nil {
			return err
		}
		for i := 0; i < len(n.Content); i += 2 { // in the file's order
			k := n.Content[i]
			if k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if strings.Contains(k.Value, "=") {
				return d.errf(k, join(p, k.Value), "a variable's name holds no =")
			}
			*e = append(*e, k.Value+"="+m[k.Value])
		}
		return nil
	}
	var list []string
	if err := d.decode(n, p, reflectValue(&list)); err != nil {
		return err
	}
	for i, kv := range list {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return d.errAt(fmt.Sprintf("%s[%d]", p, i), fmt.Errorf("%q: want KEY=VALUE", kv))
		}
	}
	*e = list
	return nil
}

// volumeFile is a volume written out in full.
type volumeFile struct {
	Driver   string            `yaml:"driver"`
	Name     string            `yaml:"name"`
	Target   string            `yaml:"target"`
	ReadOnly bool              `yaml:"read_only"`
	Options  map[string]string `yaml:"options"`
}

// volumeValue is a Docker volume: DRIVER/NAME:/path[:ro], as -v takes it,
// or a volumeFile.
type volumeValue api.VolumeMount

func (v *volumeValue) decodeNode(d *yamlDecoder, n *yaml.Node, p string) error {
	if n.Kind == yaml.ScalarNode {
		vm, err := parseVolumeShort(n.Value)
		if err != nil {
			return &fileError{File: d.file, Line: n.Line, Field: p, Err: err}
		}
		*v = volumeValue(vm)
		return nil
	}
	var f volumeFile
	if err := d.mapping(n, p, reflectValue(&f)); err != nil {
		return err
	}
	for _, r := range []struct{ key, v string }{{"driver", f.Driver}, {"name", f.Name}, {"target", f.Target}} {
		if r.v == "" {
			return d.errf(n, join(p, r.key), "missing: a volume needs a driver, a name and a target")
		}
	}
	*v = volumeValue(f)
	return nil
}

// portFile is a published port written out in full.
type portFile struct {
	ContainerPort int    `yaml:"container_port"`
	Protocol      string `yaml:"protocol"`
	HostIP        string `yaml:"host_ip"`
}

// portValue is a container port published on one of the task's granted
// host ports: 8080, "53/udp", or a portFile.
type portValue api.PortMapping

func (v *portValue) decodeNode(d *yamlDecoder, n *yaml.Node, p string) error {
	var f portFile
	if n.Kind == yaml.ScalarNode {
		port, proto, _ := strings.Cut(n.Value, "/")
		var err error
		if f.ContainerPort, err = strconv.Atoi(port); err != nil || n.ShortTag() == "!!null" {
			return d.errf(n, p, "%s: want a container port, as 8080 or \"53/udp\"", yamlnode.Describe(n))
		}
		f.Protocol = proto
	} else if err := d.mapping(n, p, reflectValue(&f)); err != nil {
		return err
	}
	if f.ContainerPort < 1 || f.ContainerPort > 65535 {
		return d.errf(n, p, "container port %d is not 1-65535", f.ContainerPort)
	}
	switch f.Protocol {
	case "":
		f.Protocol = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return d.errf(n, p, "protocol %q is not tcp, udp or sctp", f.Protocol)
	}
	*v = portValue{ContainerPort: f.ContainerPort, Protocol: f.Protocol, HostIP: f.HostIP}
	return nil
}

// parseSessionFile reads a session file, named name in errors, into the
// spec caisson submit sends. Its errors are *fileError values that wrap
// api.ErrInvalid.
func parseSessionFile(name string, data []byte) (api.SessionSpec, error) {
	var f sessionFile
	d, err := decodeFile(name, data, &f)
	if err != nil {
		return api.SessionSpec{}, err
	}
	if f.Name == "" {
		return api.SessionSpec{}, d.errAt("name", errors.New("missing: a session has a name"))
	}
	if len(f.Groups) == 0 {
		return api.SessionSpec{}, d.errAt("groups", errors.New("missing: a session has at least one task group"))
	}
	s := api.SessionSpec{Name: f.Name, Consumer: f.Consumer, Priority: f.Priority, Kind: f.Kind, Policy: f.Policy, Labels: f.Labels}
	for i, g := range f.Groups {
		tg, err := g.wire(d, fmt.Sprintf("groups[%d]", i))
		if err != nil {
			return api.SessionSpec{}, err
		}
		s.Groups = append(s.Groups, tg)
	}
	if err := scheduler.CheckSession(s); err != nil {
		return api.SessionSpec{}, d.sessionError(s, err)
	}
	return s, nil
}

func (g groupFile) wire(d *yamlDecoder, p string) (api.TaskGroup, error) {
	tg := api.TaskGroup{
		Name: g.Name, Count: 1, Min: g.Min, Max: g.Max, GPUModels: g.GPUModels, SameIsland: g.SameIsland,
		KillGrace: api.Duration(g.KillGrace),
		Container: api.ContainerSpec{
			Image: g.Image, Platform: g.Platform, Rootfs: g.Rootfs, Command: g.Command, Env: g.Env,
			WorkingDir: g.Workdir, User: g.User, Hostname: g.Hostname, Networks: g.Networks, Labels: g.Labels,
		},
	}
	if g.Count != nil {
		tg.Count = *g.Count
	}
	if g.Entrypoint != nil {
		tg.Container.Entrypoint = *g.Entrypoint
	}
	roots := 0
	for _, set := range []bool{g.Image != "", g.Rootfs != "", g.NoImage} {
		if set {
			roots++
		}
	}
	switch {
	case roots != 1:
		return tg, d.errAt(p, errors.New("a group runs one of: an image, a rootfs or no_image: true (the host's filesystem)"))
	case g.Platform != "" && g.Image == "":
		return tg, d.errAt(join(p, "platform"), errors.New("applies to an image"))
	}
	var err error
	if tg.Resources, err = g.Resources.wire(d, join(p, "resources")); err != nil {
		return tg, err
	}
	for _, v := range g.Volumes {
		tg.Container.Volumes = append(tg.Container.Volumes, api.VolumeMount(v))
	}
	for _, port := range g.Ports {
		tg.Ports = append(tg.Ports, api.PortMapping(port))
	}
	for _, c := range g.Constraints {
		tg.Constraints = append(tg.Constraints, api.Constraint(c))
	}
	return tg, nil
}

// sessionError places an error of scheduler.CheckSession, which names a
// JSON path without indexes ("groups.resources.memory_bytes"), in the
// file: the group at fault is the first that fails the check alone, or
// has the name of one before it.
func (d *yamlDecoder) sessionError(s api.SessionSpec, err error) error {
	var fe *api.FieldError
	if !errors.As(err, &fe) {
		return d.errAt("", err)
	}
	field := fe.Field
	if rest, ok := strings.CutPrefix(fe.Field, "groups."); ok {
		i, seen := 0, map[string]bool{}
		for j, g := range s.Groups {
			alone := s
			alone.Groups = []api.TaskGroup{g}
			if seen[g.Name] || scheduler.CheckSession(alone) != nil {
				i = j
				break
			}
			seen[g.Name] = true
		}
		rest = strings.NewReplacer("memory_bytes", "memory", "disk_bytes", "disk", "ports.host_port", "ports").Replace(rest)
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, "container"), ".") // the template is the group's own keys
		field = join(fmt.Sprintf("groups[%d]", i), rest)
	}
	msg := fe.Err
	if fe.Value != "" {
		msg = fmt.Errorf("%s: %w", fe.Value, fe.Err)
	}
	return d.errAt(field, msg)
}

// treeFile is a consumer tree as written.
type treeFile struct {
	Consumers []consumerFile `yaml:"consumers"`
}

// consumerFile is a consumer: named by its path, or by its name under
// the consumer it is a child of.
type consumerFile struct {
	Path     string         `yaml:"path"`
	Name     string         `yaml:"name"`
	Weight   float64        `yaml:"weight"`
	Owned    resourcesFile  `yaml:"owned"`
	Limit    resourcesFile  `yaml:"limit"`
	Lend     *bool          `yaml:"lend"`
	Grace    durationValue  `yaml:"grace"`
	Children []consumerFile `yaml:"children"`
}

// parseTreeFile reads a consumer tree file, named name in errors, into
// the tree caisson consumer apply sends: every consumer of the file,
// parents before their children. Its errors are *fileError values that
// wrap api.ErrInvalid.
func parseTreeFile(name string, data []byte) (api.ConsumerTree, error) {
	var f treeFile
	d, err := decodeFile(name, data, &f)
	if err != nil {
		return api.ConsumerTree{}, err
	}
	if len(f.Consumers) == 0 {
		return api.ConsumerTree{}, d.errAt("consumers", errors.New("missing: a tree has at least one consumer"))
	}
	var out []api.Consumer
	where := map[string]string{} // each consumer's path in the file
	var walk func(list []consumerFile, p, parent string) error
	walk = func(list []consumerFile, p, parent string) error {
		for i, cf := range list {
			at := fmt.Sprintf("%s[%d]", p, i)
			c, err := cf.wire(d, at, parent)
			if err != nil {
				return err
			}
			if prev, ok := where[c.Path]; ok {
				return d.errAt(at, fmt.Errorf("%s is given twice (first at %s)", c.Path, prev))
			}
			where[c.Path] = at
			out = append(out, c)
			if err := walk(cf.Children, join(at, "children"), c.Path); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(f.Consumers, "consumers", ""); err != nil {
		return api.ConsumerTree{}, err
	}
	for _, c := range out {
		if parent := path.Dir(c.Path); parent != "/" && where[parent] == "" {
			return api.ConsumerTree{}, d.errAt(join(where[c.Path], "path"), fmt.Errorf("%s: its parent %s is not in the tree", c.Path, parent))
		}
	}
	// Parents first: the depth of a path is its number of slashes.
	slices.SortStableFunc(out, func(a, b api.Consumer) int {
		return cmp.Compare(strings.Count(a.Path, "/"), strings.Count(b.Path, "/"))
	})
	return api.ConsumerTree{Consumers: out}, nil
}

func (cf consumerFile) wire(d *yamlDecoder, at, parent string) (api.Consumer, error) {
	var c api.Consumer
	switch {
	case cf.Path != "" && cf.Name != "":
		return c, d.errAt(at, errors.New("give a path or a name, not both"))
	case cf.Name != "":
		if !api.ValidName(cf.Name) {
			return c, d.errAt(join(at, "name"), fmt.Errorf("%q: want a letter or digit, then letters, digits, '_', '.' and '-'", cf.Name))
		}
		c.Path = strings.TrimSuffix(parent, "/") + "/" + cf.Name
	case cf.Path != "":
		if err := checkConsumerPath(cf.Path); err != nil {
			return c, d.errAt(join(at, "path"), err)
		}
		if parent != "" && path.Dir(cf.Path) != parent {
			return c, d.errAt(join(at, "path"), fmt.Errorf("%s is not a child of %s, the consumer it is listed under", cf.Path, parent))
		}
		c.Path = cf.Path
	default:
		return c, d.errAt(at, errors.New("missing: a consumer has a path (/eng/ml) or, under its parent, a name"))
	}
	if cf.Weight < 0 {
		return c, d.errAt(join(at, "weight"), fmt.Errorf("%g is negative", cf.Weight))
	}
	var err error
	if c.Owned, err = cf.Owned.wire(d, join(at, "owned")); err != nil {
		return c, err
	}
	if c.Limit, err = cf.Limit.wire(d, join(at, "limit")); err != nil {
		return c, err
	}
	c.Weight, c.Grace = cf.Weight, api.Duration(cf.Grace)
	c.NoLend = cf.Lend != nil && !*cf.Lend
	return c, nil
}

// checkConsumerPath refuses a path that is not "/" then names joined by
// "/".
func checkConsumerPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return fmt.Errorf("%q: want an absolute path below the root, as /eng/ml", p)
	}
	for _, name := range strings.Split(p[1:], "/") {
		if !api.ValidName(name) {
			return fmt.Errorf("%q: %q is not a name: want a letter or digit, then letters, digits, '_', '.' and '-'", p, name)
		}
	}
	return nil
}
