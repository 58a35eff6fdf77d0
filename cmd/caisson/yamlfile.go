package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/yamlnode"
)

// The cluster's files (a session file for submit, a consumer tree for
// consumer apply) are YAML, read strictly: each value is decoded into a
// Go struct whose yaml tags name the keys a mapping may hold; an unknown
// key, a key given twice, a value of the wrong type, each is an error
// naming the file, the line and the field's path ("groups[0].resources.memory").
// JSON, which is YAML, reads the same.

// fileError is a mistake in a file the user wrote.
type fileError struct {
	File string
	Line int // 0 when the line is not known
	// Field is the path of keys from the top: "groups[0].resources.memory";
	// empty for the file as a whole.
	Field string
	Err   error
}

func (e *fileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *fileError) Unwrap() error { return e.Err }

// maxYAMLNodes bounds the values a file may hold, aliases expanded: a
// few anchors must not make a small file decode into gigabytes.
const maxYAMLNodes = 100_000

// yamlDecoder decodes one document into Go values, remembering the line
// of each field for the checks that follow.
type yamlDecoder struct {
	file  string
	lines map[string]int
	nodes int
}

// nodeDecoder is a value that reads itself from a node: a size, a list
// that may also be written as a string.
type nodeDecoder interface {
	decodeNode(d *yamlDecoder, n *yaml.Node, path string) error
}

// decodeFile decodes data, a file named name, into v, a pointer to a
// struct. An empty file is an error.
func decodeFile(name string, data []byte, v any) (*yamlDecoder, error) {
	d := &yamlDecoder{file: name, lines: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errf(nil, "", "the file is empty")
		}
		return nil, d.syntaxError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, d.errf(&next, "", "a second YAML document: the file holds one")
	case !errors.Is(err, io.EOF):
		return nil, d.syntaxError(err)
	}
	if len(doc.Content) != 1 {
		return nil, d.errf(&doc, "", "the file is empty")
	}
	return d, d.decode(doc.Content[0], "", reflect.ValueOf(v).Elem())
}

func (d *yamlDecoder) syntaxError(err error) error {
	line, msg := yamlnode.SyntaxError(err)
	return &fileError{File: d.file, Line: line, Err: fmt.Errorf("not valid YAML: %s: %w", msg, api.ErrInvalid)}
}

// errf is an error at node n (its line), about the field at path.
func (d *yamlDecoder) errf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &fileError{File: d.file, Line: line, Field: path, Err: fmt.Errorf(format+": %w", append(args, api.ErrInvalid)...)}
}

// errAt is an error about the field at path, at the line the decoding
// found it on, or its nearest parent's.
func (d *yamlDecoder) errAt(path string, err error) error {
	if !errors.Is(err, api.ErrInvalid) {
		err = fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	return &fileError{File: d.file, Line: yamlnode.LineOf(d.lines, path), Field: path, Err: err}
}

// deref follows an alias to what it names, counting every node against
// the budget.
func (d *yamlDecoder) deref(n *yaml.Node, path string) (*yaml.Node, error) {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 16 {
			return nil, d.errf(n, path, "an alias that names nothing")
		}
		n = n.Alias
	}
	if d.nodes++; d.nodes > maxYAMLNodes {
		return nil, d.errf(n, path, "more than %d values, aliases expanded", maxYAMLNodes)
	}
	return n, nil
}

func join(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	}
	return path + "." + key
}

func (d *yamlDecoder) decode(n *yaml.Node, path string, v reflect.Value) error {
	n, err := d.deref(n, path)
	if err != nil {
		return err
	}
	if u, ok := v.Addr().Interface().(nodeDecoder); ok {
		return u.decodeNode(d, n, path)
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.mapping(n, path, v)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		return d.decode(n, path, v.Elem())
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.errf(n, path, "want a list, not %s", yamlnode.Describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, it := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = it.Line
			if err := d.decode(it, p, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		return d.stringMap(n, path, v)
	}
	s, err := d.scalar(n, path)
	if err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s.Value)
	case reflect.Bool:
		var b bool
		if s.ShortTag() != "!!bool" || s.Decode(&b) != nil {
			return d.errf(n, path, "%s is not true or false", yamlnode.Describe(s))
		}
		v.SetBool(b)
	case reflect.Int:
		i, err := strconv.ParseInt(s.Value, 0, 32)
		if s.ShortTag() != "!!int" || err != nil {
			return d.errf(n, path, "%s is not a whole number (at most %d)", yamlnode.Describe(s), math.MaxInt32)
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := d.number(s, path)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("yaml: no decoding into %s", v.Type()))
	}
	return nil
}

// scalar is n when it is a value, not a list, a mapping or nothing.
func (d *yamlDecoder) scalar(n *yaml.Node, path string) (*yaml.Node, error) {
	switch {
	case n.Kind != yaml.ScalarNode:
		return nil, d.errf(n, path, "want a value, not %s", yamlnode.Describe(n))
	case n.ShortTag() == "!!null":
		return nil, d.errf(n, path, "no value")
	}
	return n, nil
}

// number reads a number: an int or a float scalar, finite.
func (d *yamlDecoder) number(s *yaml.Node, path string) (float64, error) {
	f, err := strconv.ParseFloat(s.Value, 64)
	if (s.ShortTag() != "!!int" && s.ShortTag() != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, d.errf(s, path, "%s is not a number", yamlnode.Describe(s))
	}
	return f, nil
}

// fields maps each key of a struct's yaml tags to its field's index.
func fields(t reflect.Type) (map[string]int, []string) {
	idx := map[string]int{}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		idx[name] = i
		names = append(names, name)
	}
	slices.Sort(names)
	return idx, names
}

// mapping decodes a mapping into a struct: each key must be one of its
// fields', and appear once.
func (d *yamlDecoder) mapping(n *yaml.Node, path string, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.errf(n, path, "want a mapping of fields, not %s", yamlnode.Describe(n))
	}
	idx, names := fields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := d.deref(n.Content[i], path)
		if err != nil {
			return err
		}
		if k.Kind != yaml.ScalarNode {
			return d.errf(n.Content[i], path, "a key is %s, not a name", yamlnode.Describe(k))
		}
		p := join(path, k.Value)
		f, ok := idx[k.Value]
		switch {
		case k.Value == "<<":
			return d.errf(k, p, "merge keys are not supported: use an alias (*name) for a whole value")
		case !ok:
			return d.errf(k, p, "unknown field: want one of %s", strings.Join(names, ", "))
		case seen[k.Value]:
			return d.errf(k, p, "the field is given twice")
		}
		seen[k.Value] = true
		d.lines[p] = k.Line
		if err := d.decode(n.Content[i+1], p, v.Field(f)); err != nil {
			return err
		}
	}
	return nil
}

// stringMap decodes a mapping of names to values (labels, env).
func (d *yamlDecoder) stringMap(n *yaml.Node, path string, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.errf(n, path, "want a mapping of names to values, not %s", yamlnode.Describe(n))
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := d.deref(n.Content[i], path)
		if err != nil {
			return err
		}
		if k.Kind != yaml.ScalarNode || k.Value == "" || k.ShortTag() == "!!null" {
			return d.errf(n.Content[i], path, "a key is %s, not a name", yamlnode.Describe(k))
		}
		p := join(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			return d.errf(k, p, "the key is given twice")
		}
		d.lines[p] = k.Line
		val := reflect.New(v.Type().Elem()).Elem()
		if err := d.decode(n.Content[i+1], p, val); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(k.Value), val)
	}
	v.Set(m)
	return nil
}

// reflectValue is the value p points at, for decoding into.
func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
