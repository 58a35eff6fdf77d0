package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/userfile"
	"github.com/caisson/caisson/internal/yamlnode"
	"github.com/caisson/caisson/scheduler"
)

// MaxFileBytes is the largest scenario file Load reads: about 100,000
// sessions written one per entry, and a few gigabytes of memory to parse.
const MaxFileBytes = 16 << 20

// maxFileBytes is MaxFileBytes, lowered by tests.
var maxFileBytes int64 = MaxFileBytes

// Load reads a scenario file and checks it; see Parse. The file may be
// anything that can be read (a FIFO, /dev/stdin), but not a directory, and
// not more than MaxFileBytes: a larger one is refused with a
// *userfile.LimitError that wraps api.ErrInvalid.
func Load(path string) (*Scenario, error) {
	data, err := userfile.ReadFile(path, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a scenario from data, named name in errors. The format is
// described in examples/README.md. Unknown fields, values of the wrong
// type and scenarios that do not hold together (unknown consumers, owned
// shares above the cluster, ...) are errors: the first one found, in file
// order, as an *Error that names the file, the line and the field. On an
// error no Scenario is returned.
func Parse(name string, data []byte) (*Scenario, error) {
	root, err := document(name, data)
	if err != nil {
		return nil, err
	}
	w := &walker{file: name, lines: map[string]int{}}
	s, err := w.scenario(root)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// document parses data as one YAML document and returns its top node.
func document(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Line: 1, Field: "version", Err: fmt.Errorf("the file is empty: a scenario starts with \"version: %d\": %w", Version, api.ErrInvalid)}
		}
		return nil, syntaxError(name, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &Error{File: name, Line: next.Line, Err: fmt.Errorf("a second YAML document: a scenario file holds one: %w", api.ErrInvalid)}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(name, err)
	}
	if len(doc.Content) != 1 {
		return nil, &Error{File: name, Line: 1, Field: "version", Err: fmt.Errorf("the file is empty: a scenario starts with \"version: %d\": %w", Version, api.ErrInvalid)}
	}
	return doc.Content[0], nil
}

func syntaxError(name string, err error) error {
	line, msg := yamlnode.SyntaxError(err)
	return &Error{File: name, Line: line, Err: fmt.Errorf("not valid YAML: %s: %w", msg, api.ErrInvalid)}
}

// walker turns the YAML tree into a Scenario, checking the type of every
// value and remembering the line of every field for Validate.
type walker struct {
	file  string
	lines map[string]int

	consumerNames map[string]bool
	agentCount    int
	gpuCount      int
	sessionCount  int
}

func (w *walker) errf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: w.file, Line: line, Field: path, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), api.ErrInvalid)}
}

// errAt is errf at the line of a field the walk has been through.
func (w *walker) errAt(path, format string, args ...any) error {
	return w.errf(&yaml.Node{Line: w.lines[path]}, path, format, args...)
}

// wrap locates an error of a value parser; it wraps api.ErrInvalid, once.
func (w *walker) wrap(n *yaml.Node, path string, err error) error {
	if !errors.Is(err, api.ErrInvalid) {
		err = fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	return &Error{File: w.file, Line: n.Line, Field: path, Err: err}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

type handlers map[string]func(path string, v *yaml.Node) error

// mapping walks a mapping's fields in file order. Each key must be one of
// hs and appear once. It returns the keys it saw.
func (w *walker) mapping(n *yaml.Node, path string, hs handlers) (map[string]bool, error) {
	m := deref(n)
	if m.Kind != yaml.MappingNode {
		return nil, w.errf(n, path, "want a mapping of fields, not %s", describe(m))
	}
	seen := make(map[string]bool, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, w.errf(m.Content[i], path, "a key is %s, not a name", describe(k))
		}
		p := join(path, k.Value)
		if k.Value == "<<" {
			return nil, w.errf(k, p, "merge keys are not supported: use an alias (*name) for a whole value")
		}
		h, ok := hs[k.Value]
		switch {
		case !ok:
			names := make([]string, 0, len(hs))
			for name := range hs {
				names = append(names, name)
			}
			sort.Strings(names)
			return nil, w.errf(k, p, "unknown field: want one of %s", strings.Join(names, ", "))
		case seen[k.Value]:
			return nil, w.errf(k, p, "the field is repeated")
		}
		seen[k.Value] = true
		if _, ok := w.lines[p]; !ok {
			w.lines[p] = k.Line
		}
		if err := h(p, v); err != nil {
			return nil, err
		}
	}
	return seen, nil
}

// required reports the first of names not in seen as missing.
func (w *walker) required(n *yaml.Node, path string, seen map[string]bool, names ...string) error {
	for _, name := range names {
		if !seen[name] {
			return w.errf(n, join(path, name), "missing: the field is required")
		}
	}
	return nil
}

// sequence walks a list, calling each for every item.
func (w *walker) sequence(n *yaml.Node, path string, each func(path string, item *yaml.Node) error) error {
	s := deref(n)
	if s.Kind != yaml.SequenceNode {
		return w.errf(n, path, "want a list, not %s", describe(s))
	}
	for i, it := range s.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if _, ok := w.lines[p]; !ok {
			w.lines[p] = it.Line
		}
		if err := each(p, it); err != nil {
			return err
		}
	}
	return nil
}

// scalar returns the scalar node n is or names; nothing (~ or an empty
// value) is an error.
func (w *walker) scalar(n *yaml.Node, path string) (*yaml.Node, error) {
	s := deref(n)
	switch {
	case s.Kind == yaml.ScalarNode && s.ShortTag() == "!!null":
		return nil, w.errf(n, path, "no value")
	case s.Kind != yaml.ScalarNode:
		return nil, w.errf(n, path, "want a value, not %s", describe(s))
	}
	return s, nil
}

func (w *walker) str(n *yaml.Node, path string) (string, error) {
	s, err := w.scalar(n, path)
	if err != nil {
		return "", err
	}
	if s.Value == "" {
		return "", w.errf(n, path, "is empty")
	}
	return s.Value, nil
}

func (w *walker) integer(n *yaml.Node, path string, lo, hi int64) (int64, error) {
	s, err := w.scalar(n, path)
	if err != nil {
		return 0, err
	}
	r, ok := numberOf(s)
	if !ok || !r.IsInt() {
		return 0, w.errf(n, path, "%s is not a whole number", describe(s))
	}
	if !r.Num().IsInt64() || r.Num().Int64() < lo || r.Num().Int64() > hi {
		return 0, w.errf(n, path, "%s is out of range: want %d to %d", s.Value, lo, hi)
	}
	return r.Num().Int64(), nil
}

func (w *walker) count(n *yaml.Node, path string, hi int) (int, error) {
	v, err := w.integer(n, path, 0, int64(hi))
	return int(v), err
}

func (w *walker) number(n *yaml.Node, path string) (float64, error) {
	s, err := w.scalar(n, path)
	if err != nil {
		return 0, err
	}
	r, ok := numberOf(s)
	if !ok {
		return 0, w.errf(n, path, "%s is not a number", describe(s))
	}
	f, _ := r.Float64()
	if math.IsInf(f, 0) {
		return 0, w.errf(n, path, "%s is too large", s.Value)
	}
	return f, nil
}

func (w *walker) boolean(n *yaml.Node, path string) (bool, error) {
	s, err := w.scalar(n, path)
	if err != nil {
		return false, err
	}
	var b bool
	if s.ShortTag() != "!!bool" || s.Decode(&b) != nil {
		return false, w.errf(n, path, "%s is not true or false", describe(s))
	}
	return b, nil
}

// duration reads a Go duration ("30s", "1m30s", "250ms"); 0 may go
// without a unit. Negative durations are errors.
func (w *walker) duration(n *yaml.Node, path string) (time.Duration, error) {
	s, err := w.scalar(n, path)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		return 0, w.errf(n, path, "%s is not a duration: write it with a unit, as in 30s, 1m30s or 250ms", describe(s))
	}
	if d < 0 {
		return 0, w.errf(n, path, "%s is negative", s.Value)
	}
	return d, nil
}

func (w *walker) strList(n *yaml.Node, path string) ([]string, error) {
	var out []string
	err := w.sequence(n, path, func(p string, it *yaml.Node) error {
		v, err := w.str(it, p)
		out = append(out, v)
		return err
	})
	return out, err
}

// value applies a value parser to a scalar, locating its error.
func (w *walker) value(n *yaml.Node, path string, parse func(*yaml.Node) (int64, error)) (int64, error) {
	s, err := w.scalar(n, path)
	if err != nil {
		return 0, err
	}
	v, err := parse(s)
	if err != nil {
		return 0, w.wrap(n, path, err)
	}
	return v, nil
}

// resourceKeys are the names of the resource dimensions in a file.
var resourceKeys = [scheduler.NumKinds]string{
	scheduler.CPU:    "cpus",
	scheduler.Memory: "memory",
	scheduler.Disk:   "disk",
	scheduler.Ports:  "ports",
	scheduler.GPU:    "gpus",
}

// resourceHandlers adds handlers for the resource fields to hs, filling r.
func (w *walker) resourceHandlers(hs handlers, r *scheduler.Resources, gpuMode int) handlers {
	set := func(k scheduler.Kind, parse func(*yaml.Node) (int64, error)) {
		hs[resourceKeys[k]] = func(p string, v *yaml.Node) (err error) {
			r[k], err = w.value(v, p, parse)
			return err
		}
	}
	set(scheduler.CPU, cpuMilli)
	set(scheduler.Memory, sizeBytes)
	set(scheduler.Disk, sizeBytes)
	set(scheduler.Ports, portCount)
	set(scheduler.GPU, func(n *yaml.Node) (int64, error) { return gpuMilli(n, gpuMode) })
	return hs
}

func (w *walker) resources(n *yaml.Node, path string) (scheduler.Resources, error) {
	var r scheduler.Resources
	_, err := w.mapping(n, path, w.resourceHandlers(handlers{}, &r, gpuAny))
	return r, err
}

func (w *walker) dist(n *yaml.Node, path string) (Dist, error) {
	if s := deref(n); s.Kind == yaml.ScalarNode {
		d, err := w.duration(n, path)
		return FixedDist(d), err
	}
	var d Dist
	dur := func(dst *time.Duration) func(string, *yaml.Node) error {
		return func(p string, v *yaml.Node) (err error) {
			*dst, err = w.duration(v, p)
			return err
		}
	}
	seen, err := w.mapping(n, path, handlers{
		"dist": func(p string, v *yaml.Node) (err error) {
			d.Kind, err = w.str(v, p)
			return err
		},
		"value":  dur(&d.Value),
		"median": dur(&d.Median),
		"sigma": func(p string, v *yaml.Node) (err error) {
			d.Sigma, err = w.number(v, p)
			return err
		},
		"min":  dur(&d.Min),
		"max":  dur(&d.Max),
		"mean": dur(&d.Mean),
	})
	if err != nil {
		return d, err
	}
	if err := w.required(n, path, seen, "dist"); err != nil {
		return d, err
	}
	params := map[string][]string{
		Fixed:       {"value"},
		Lognormal:   {"median", "sigma"},
		Uniform:     {"min", "max"},
		Exponential: {"mean"},
	}
	want, ok := params[d.Kind]
	if !ok {
		return d, w.errAt(join(path, "dist"), "%q is not a distribution: want fixed, lognormal, uniform or exponential", d.Kind)
	}
	m := deref(n)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if key := deref(m.Content[i]).Value; key != "dist" && !slices.Contains(want, key) {
			return d, w.errAt(join(path, key), "not a parameter of a %s distribution: want %s", d.Kind, strings.Join(want, " and "))
		}
	}
	if err := w.required(m, path, seen, want...); err != nil {
		return d, err
	}
	if err := d.Validate(); err != nil {
		f, e := splitParam(err)
		return d, w.errAt(join(path, f), "%v", e)
	}
	return d, nil
}
