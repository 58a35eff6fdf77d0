package isolators

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/oci"
)

// Contribution is one isolator's PrepareResponse, as Merge takes it.
type Contribution struct {
	Isolator string
	Response *PrepareResponse
}

// Field is a part of the runtime spec that a PrepareResponse sets.
type Field string

// The fields of a PrepareResponse that one isolator owns; a conflict names
// one of them.
const (
	FieldEnv         Field = "environment variable" // keyed by the variable's name
	FieldMount       Field = "mount"                // keyed by the destination
	FieldNamespace   Field = "namespace"            // keyed by the namespace's type
	FieldDevice      Field = "device"               // keyed by the device node's path
	FieldAnnotation  Field = "annotation"           // keyed by the annotation's name
	FieldCgroupsPath Field = "the cgroup path"
	FieldCPU         Field = "cpu resources"
	FieldMemory      Field = "memory resources"
	FieldPids        Field = "pids resources"
	FieldUnified     Field = "cgroup file" // keyed by the file's name
)

// ConflictError is a launch's conflict over a part of the runtime spec: two
// isolators set it, or an isolator set what the container's own request
// holds. It wraps api.ErrConflict.
type ConflictError struct {
	Field Field
	// Key is the variable, destination, namespace type, device path,
	// annotation or cgroup file; empty for the fields that hold one value.
	Key string
	// First set the part first: an isolator, or empty for the container's
	// own request. Second is the isolator that set it again.
	First, Second string
}

func (e *ConflictError) Error() string {
	if e.First == "" {
		return fmt.Sprintf("isolator %s and the container's own %ss both use %s: %v", e.Second, e.Field, e.Key, api.ErrConflict)
	}
	what := string(e.Field)
	switch {
	case e.Field == FieldNamespace:
		what = e.Key + " namespace"
	case e.Key != "":
		what += " " + e.Key
	}
	return fmt.Sprintf("isolators %s and %s both set %s: %v", e.First, e.Second, what, api.ErrConflict)
}

func (e *ConflictError) Unwrap() error { return api.ErrConflict }

// owners records which isolator set each part of the spec, and to what
// (NRI's FieldOwners): a second setter gets a conflict that names both.
type owners map[ownedPart]owner

type ownedPart struct {
	field Field
	key   string
}

type owner struct{ isolator, value string }

// claim records that isolator sets a part to value, and reports whether it
// is the part's first setter. With shared, a second setter may set the
// part to the value it has; any other second setter is a conflict.
func (o owners) claim(f Field, key, isolator, value string, shared bool) (bool, error) {
	p := ownedPart{f, key}
	if prev, ok := o[p]; ok {
		if shared && prev.value == value {
			return false, nil
		}
		return false, &ConflictError{Field: f, Key: key, First: prev.isolator, Second: isolator}
	}
	o[p] = owner{isolator: isolator, value: value}
	return true, nil
}

// Merge applies the isolators' contributions to s, in order, with the rules
// documented on PrepareResponse: first every response's fields, each
// checked against the owners of what it sets, then every response's
// SpecOpts. reserved are the mount destinations the container's own request
// holds, which no isolator may take. A conflict is a *ConflictError.
func Merge(s *oci.Spec, contribs []Contribution, reserved map[string]bool) error {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	own := owners{}
	for dst := range reserved {
		own[ownedPart{FieldMount, dst}] = owner{}
	}
	for k := range s.Linux.Resources.Unified {
		own[ownedPart{FieldUnified, k}] = owner{}
	}
	for _, c := range contribs {
		devices, err := own.claimAll(c)
		if err != nil {
			return err
		}
		if err := apply(s, c, devices); err != nil {
			return err
		}
	}
	// Escape hatches last, in isolator order.
	for _, c := range contribs {
		if err := oci.Apply(s, c.Response.SpecOpts...); err != nil {
			return fmt.Errorf("isolator %s: %w", c.Isolator, err)
		}
	}
	return nil
}

// claimAll claims every part c's response sets, and returns the device
// nodes it adds (a node another isolator added already is not added
// twice).
func (o owners) claimAll(c Contribution) ([]specs.LinuxDevice, error) {
	r, name := c.Response, c.Isolator
	for _, kv := range r.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("isolator %s: environment variable %q is not KEY=VALUE: %w", name, kv, api.ErrInvalid)
		}
		if _, err := o.claim(FieldEnv, k, name, kv, true); err != nil {
			return nil, err
		}
	}
	for _, m := range r.Mounts {
		if !strings.HasPrefix(m.Destination, "/") {
			return nil, fmt.Errorf("isolator %s: mount destination %q is not absolute: %w", name, m.Destination, api.ErrInvalid)
		}
		if _, err := o.claim(FieldMount, m.Destination, name, "", false); err != nil {
			return nil, err
		}
	}
	for _, n := range r.Namespaces {
		if _, err := o.claim(FieldNamespace, string(n.Type), name, n.Path, true); err != nil {
			return nil, err
		}
	}
	var devices []specs.LinuxDevice
	for _, d := range r.Devices {
		first, err := o.claim(FieldDevice, d.Path, name, fmt.Sprintf("%d:%d", d.Major, d.Minor), true)
		if err != nil {
			return nil, err
		}
		if first {
			devices = append(devices, d)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
		if _, err := o.claim(FieldAnnotation, k, name, "", false); err != nil {
			return nil, err
		}
	}
	if r.CgroupsPath != "" {
		if _, err := o.claim(FieldCgroupsPath, "", name, r.CgroupsPath, true); err != nil {
			return nil, err
		}
	}
	if res := r.Resources; res != nil {
		for _, f := range []struct {
			field Field
			set   bool
		}{{FieldCPU, res.CPU != nil}, {FieldMemory, res.Memory != nil}, {FieldPids, res.Pids != nil}} {
			if !f.set {
				continue
			}
			if _, err := o.claim(f.field, "", name, "", false); err != nil {
				return nil, err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(res.Unified)) {
			if _, err := o.claim(FieldUnified, k, name, "", false); err != nil {
				return nil, err
			}
		}
	}
	return devices, nil
}

// apply applies c's response, whose parts claimAll has claimed, with
// devices the nodes it adds.
func apply(s *oci.Spec, c Contribution, devices []specs.LinuxDevice) error {
	r := c.Response
	if r.CgroupsPath != "" {
		s.Linux.CgroupsPath = r.CgroupsPath
	}
	if res := r.Resources; res != nil {
		dst := s.Linux.Resources
		if res.CPU != nil {
			dst.CPU = res.CPU
		}
		if res.Memory != nil {
			dst.Memory = res.Memory
		}
		if res.Pids != nil {
			dst.Pids = res.Pids
		}
		dst.Devices = append(dst.Devices, res.Devices...)
		if len(res.Unified) > 0 && dst.Unified == nil {
			dst.Unified = map[string]string{}
		}
		maps.Copy(dst.Unified, res.Unified)
	}
	if err := oci.Apply(s,
		oci.WithEnv(r.Env...),
		oci.WithMounts(r.Mounts...),
		oci.WithDevices(devices, r.DeviceRules),
		oci.WithAnnotations(r.Annotations),
	); err != nil {
		return fmt.Errorf("isolator %s: %w", c.Isolator, err)
	}
	for _, n := range r.Namespaces {
		if err := oci.WithNamespace(n.Type, n.Path)(s); err != nil {
			return err
		}
	}
	return nil
}
