package cdi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/internal/userfile"
)

// Kind is the CDI kind of the GPUs: devices are named nvidia.com/gpu=<UUID>.
const Kind = "nvidia.com/gpu"

// visibleDevicesEnv is set to "void" so that a legacy
// nvidia-container-runtime-hook, if one is configured, does nothing; it also
// overrides an image's NVIDIA_VISIBLE_DEVICES=all.
const visibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES"

// mountOptions are those of every driver file mount.
var mountOptions = []string{"ro", "nosuid", "nodev", "rbind"}

// Generate builds the CDI spec of an inventory's GPUs: one device per GPU
// given whole and per MIG device, named by its UUID ("GPU-…", "MIG-…"),
// whose edits hold its nodes (see Nodes: a MIG device's are its GPU's node
// and its two access capabilities, from caps); and spec-level edits, which
// a container gets with any GPU: the control nodes, the driver files
// mounted read-only at their paths relative to files.Root, and
// NVIDIA_VISIBLE_DEVICES=void. Every node is given fully (type, numbers,
// mode, permissions), so injecting it never needs the node on this host.
//
// base, when given, is a spec from `nvidia-ctk cdi generate`: its
// spec-level mounts and hooks (ldcache update, symlinks, CUDA forward
// compatibility) replace the mounts made from files, and its other
// spec-level environment is kept; its devices and device nodes are not used.
//
// The result is checked with the CDI library's validators; an inventory
// with nothing to give (no GPU, or only GPUs in MIG mode without usable MIG
// devices), a GPU major of 0, a UUID that is no CDI device name, or a file
// outside files.Root is an error wrapping api.ErrInvalid.
func Generate(inv *gpu.Inventory, devRoot string, m Majors, caps MIGMinors, files Files, base *cdispecs.Spec) (*cdispecs.Spec, error) {
	if inv == nil || len(inv.Devices) == 0 {
		return nil, fmt.Errorf("generate CDI spec: no GPUs: %w", api.ErrInvalid)
	}
	if m.GPU <= 0 {
		return nil, fmt.Errorf("generate CDI spec: no GPU major (is the driver loaded?): %w", api.ErrInvalid)
	}
	if base != nil && base.Kind != Kind {
		return nil, fmt.Errorf("generate CDI spec: base spec is of kind %q, not %q: %w", base.Kind, Kind, api.ErrInvalid)
	}
	perGPU, control := Nodes(inv, devRoot, m, caps)
	spec := &cdispecs.Spec{Version: cdispecs.CurrentVersion, Kind: Kind}
	add := func(uuid string) {
		nodes, ok := perGPU[uuid]
		if !ok {
			return
		}
		dev := cdispecs.Device{Name: uuid}
		for _, n := range nodes {
			dev.ContainerEdits.DeviceNodes = append(dev.ContainerEdits.DeviceNodes, deviceNode(n))
		}
		spec.Devices = append(spec.Devices, dev)
	}
	for _, d := range inv.Devices {
		add(d.UUID)
		for _, mig := range d.MIGDevices {
			add(mig.UUID)
		}
	}
	for _, n := range control {
		spec.ContainerEdits.DeviceNodes = append(spec.ContainerEdits.DeviceNodes, deviceNode(n))
	}

	if base == nil {
		mounts, err := fileMounts(files)
		if err != nil {
			return nil, err
		}
		spec.ContainerEdits.Mounts = mounts
	} else {
		for _, mt := range base.ContainerEdits.Mounts {
			c := *mt
			c.Options = slices.Clone(mt.Options)
			spec.ContainerEdits.Mounts = append(spec.ContainerEdits.Mounts, &c)
		}
		for _, h := range base.ContainerEdits.Hooks {
			c := *h
			c.Args, c.Env = slices.Clone(h.Args), slices.Clone(h.Env)
			spec.ContainerEdits.Hooks = append(spec.ContainerEdits.Hooks, &c)
		}
		for _, e := range base.ContainerEdits.Env {
			if k, _, _ := strings.Cut(e, "="); k != visibleDevicesEnv {
				spec.ContainerEdits.Env = append(spec.ContainerEdits.Env, e)
			}
		}
	}
	spec.ContainerEdits.Env = append(spec.ContainerEdits.Env, visibleDevicesEnv+"=void")

	if err := validate(spec); err != nil {
		return nil, fmt.Errorf("generate CDI spec: %w", err)
	}
	return spec, nil
}

func deviceNode(n Node) *cdispecs.DeviceNode {
	mode := os.FileMode(nodeMode)
	return &cdispecs.DeviceNode{
		Path:        n.ContainerPath,
		HostPath:    n.Path,
		Type:        "c",
		Major:       n.Major,
		Minor:       n.Minor,
		FileMode:    &mode,
		Permissions: "rwm",
	}
}

// fileMounts bind-mounts each file read-only at its path under files.Root.
func fileMounts(files Files) ([]*cdispecs.Mount, error) {
	root := files.Root
	if root == "" {
		root = "/"
	}
	var mounts []*cdispecs.Mount
	for _, group := range [][]string{files.Libraries, files.Links, files.Binaries, files.Firmware, files.Sockets} {
		for _, p := range group {
			rel, err := filepath.Rel(root, p)
			if err != nil || !filepath.IsAbs(p) || rel == ".." || strings.HasPrefix(rel, "../") {
				return nil, fmt.Errorf("generate CDI spec: driver file %s is not under the driver root %s: %w", p, root, api.ErrInvalid)
			}
			mounts = append(mounts, &cdispecs.Mount{
				HostPath:      p,
				ContainerPath: filepath.Join("/", rel),
				Options:       slices.Clone(mountOptions),
				Type:          "bind",
			})
		}
	}
	return mounts, nil
}

// MaxBaseBytes is the largest base spec LoadBase reads; nvidia-ctk writes
// some tens of kilobytes.
const MaxBaseBytes = 4 << 20

// LoadBase reads a spec that `nvidia-ctk cdi generate` wrote (YAML or
// JSON), to pass to Generate. A file that does not exist is an error
// wrapping api.ErrNotFound; one that does not parse, fails the CDI
// library's validation or is of another kind than nvidia.com/gpu, one
// wrapping api.ErrInvalid, as is a directory or a file above
// MaxBaseBytes. Errors are one line, and quote nothing of the file but
// short, escaped names. A FIFO is waited on until a writer comes, or ctx
// is done.
func LoadBase(ctx context.Context, path string) (*cdispecs.Spec, error) {
	data, err := userfile.ReadFileContext(ctx, path, MaxBaseBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("base CDI spec %s does not exist: %w", path, api.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("base CDI spec: %w", err)
	}
	return parseBase(path, data)
}

// parseBase is LoadBase's parse of a file's content; path names it.
func parseBase(path string, data []byte) (*cdispecs.Spec, error) {
	spec, err := cdilib.ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("base CDI spec %s is not a CDI spec: %s: %w", path, yamlProblem(err), api.ErrInvalid)
	}
	if spec == nil {
		return nil, fmt.Errorf("base CDI spec %s is empty: %w", path, api.ErrInvalid)
	}
	if spec.Kind != Kind {
		return nil, fmt.Errorf("base CDI spec %s is of kind %s, not %q: %w", path, excerpt(spec.Kind), Kind, api.ErrInvalid)
	}
	if err := validate(spec); err != nil {
		return nil, fmt.Errorf("base CDI spec %s: %w", path, err)
	}
	return spec, nil
}

// yamlLineRE finds where the YAML library says a file went wrong.
var yamlLineRE = regexp.MustCompile(`line ([0-9]+)`)

// yamlProblem says where a file failed to parse as a spec, fit for a
// one-line error that repeats nothing of the file: the YAML library quotes
// values and keys from it (the first line of /etc/passwd when that is the
// file), so only its line numbers and the kind of each problem are kept.
func yamlProblem(err error) string {
	var parts []string
	for _, msg := range strings.Split(err.Error(), "\n") {
		m := yamlLineRE.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		what := "not valid YAML"
		switch {
		case strings.Contains(msg, "not found in type"):
			what = "an unknown field"
		case strings.Contains(msg, "cannot unmarshal"):
			what = "a value of the wrong type"
		case strings.Contains(msg, "already defined"):
			what = "a repeated field"
		}
		if len(parts) == 3 {
			parts = append(parts, "and more")
			break
		}
		parts = append(parts, "line "+m[1]+": "+what)
	}
	if len(parts) == 0 {
		return "not valid YAML or JSON"
	}
	return strings.Join(parts, "; ")
}

// maxExcerpt bounds the runes of file content an error repeats.
const maxExcerpt = 200

// oneLine makes a library's message, which may quote a file, fit a
// one-line error: unprintable runes escaped (newlines among them), cut
// after twice maxExcerpt runes.
func oneLine(s string) string {
	var b strings.Builder
	for i, r := range []rune(s) {
		switch {
		case i == 2*maxExcerpt:
			b.WriteString("…")
			return b.String()
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// excerpt makes s, which may come from a file, fit a one-line error:
// quoted, unprintable runes escaped (newlines among them), cut after
// maxExcerpt runes.
func excerpt(s string) string {
	if r := []rune(s); len(r) > maxExcerpt {
		return strconv.Quote(string(r[:maxExcerpt])) + "…"
	}
	return strconv.Quote(s)
}

// nullEntry reports a null entry in a list of edits.
func nullEntry(path string, e *cdispecs.ContainerEdits) error {
	for _, l := range []struct {
		name string
		null bool
	}{
		{"deviceNodes", slices.Contains(e.DeviceNodes, nil)},
		{"netDevices", slices.Contains(e.NetDevices, nil)},
		{"hooks", slices.Contains(e.Hooks, nil)},
		{"mounts", slices.Contains(e.Mounts, nil)},
	} {
		if l.null {
			return fmt.Errorf("%s.%s has an empty entry", path, l.name)
		}
	}
	return nil
}

// validate runs the checks the CDI library makes when it loads a spec
// (version, kind, edits, device names), through its exported validators.
// Errors wrap api.ErrInvalid.
func validate(spec *cdispecs.Spec) error {
	invalid := func(err error) error { return fmt.Errorf("%s: %w", oneLine(err.Error()), api.ErrInvalid) }
	// The library's validators dereference every entry of these lists: a
	// null one ("mounts: [~]") would crash them.
	if err := nullEntry("containerEdits", &spec.ContainerEdits); err != nil {
		return invalid(err)
	}
	for i := range spec.Devices {
		if err := nullEntry(fmt.Sprintf("devices[%d].containerEdits", i), &spec.Devices[i].ContainerEdits); err != nil {
			return invalid(err)
		}
	}
	if err := cdispecs.ValidateVersion(spec); err != nil {
		return invalid(err)
	}
	vendor, class := parser.ParseQualifier(spec.Kind)
	if err := parser.ValidateVendorName(vendor); err != nil {
		return invalid(err)
	}
	if err := parser.ValidateClassName(class); err != nil {
		return invalid(err)
	}
	if err := (&cdilib.ContainerEdits{ContainerEdits: &spec.ContainerEdits}).Validate(); err != nil {
		return invalid(err)
	}
	if len(spec.Devices) == 0 {
		return invalid(errors.New("no devices"))
	}
	seen := map[string]bool{}
	for i := range spec.Devices {
		d := &spec.Devices[i]
		if err := parser.ValidateDeviceName(d.Name); err != nil {
			return invalid(err)
		}
		if seen[d.Name] {
			return invalid(fmt.Errorf("device %q is listed twice", d.Name))
		}
		seen[d.Name] = true
		e := d.ContainerEdits
		if len(e.Env)+len(e.DeviceNodes)+len(e.Hooks)+len(e.Mounts)+len(e.AdditionalGIDs)+len(e.NetDevices) == 0 && e.IntelRdt == nil {
			return invalid(fmt.Errorf("device %q has no edits", d.Name))
		}
		if err := (&cdilib.ContainerEdits{ContainerEdits: &d.ContainerEdits}).Validate(); err != nil {
			return invalid(fmt.Errorf("device %q: %w", d.Name, err))
		}
	}
	return nil
}
