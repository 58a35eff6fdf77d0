package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/userfile"
)

// The columns of the files. Columns may come in any order; columns not
// named here are ignored.
var (
	nodeRequired = []string{"sn", "cpu_milli", "memory_mib", "gpu"}
	nodeOptional = []string{"model"}
	podRequired  = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "creation_time", "deletion_time"}
	podOptional  = []string{"gpu_spec", "qos", "pod_phase", "scheduled_time"}
)

// Bounds that no real machine or pod reaches, so that no value overflows
// once converted.
const (
	maxMilli   = 1 << 40 // millicores
	maxMiB     = 1 << 40 // a mebibyte count: 2^60 bytes
	maxGPUs    = 1024
	maxSeconds = 1 << 32 // about 136 years
)

// MaxFileBytes is the largest node or pod list LoadNodes and LoadPods
// read: about 900,000 pods of the openb trace's format (its default list
// has 8,152 in 575 KB).
const MaxFileBytes = 64 << 20

// maxFileBytes is MaxFileBytes, lowered by tests.
var maxFileBytes int64 = MaxFileBytes

// LoadNodes reads a node list file (openb_node_list_*.csv); see
// ReadNodes. The file may be anything that can be read (a FIFO,
// /dev/stdin), but not a directory, and not more than MaxFileBytes: a
// larger one is refused with a *userfile.LimitError that wraps
// api.ErrInvalid. So is a pod list file in LoadPods.
func LoadNodes(path string) ([]Node, error) {
	f, err := userfile.Open(path, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("load nodes: %w", err)
	}
	defer f.Close()
	return ReadNodes(path, f)
}

// ReadNodes reads a node list, named name in errors. The header names the
// columns: sn, cpu_milli, memory_mib and gpu are required, model is
// optional. Names are unique and not empty, cpu_milli and memory_mib
// above zero, gpu a whole number. A malformed row is an *Error naming the
// file, line and column, and no nodes come with it.
func ReadNodes(name string, r io.Reader) ([]Node, error) {
	t, err := newTable(name, r, nodeRequired, nodeOptional)
	if err != nil {
		return nil, err
	}
	var nodes []Node
	seen := map[string]int{}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nodes, nil
		}
		n := Node{Name: t.value("sn"), Model: t.value("model")}
		if n.Name == "" {
			return nil, t.errf("sn", "the node has no name")
		}
		if line, dup := seen[n.Name]; dup {
			return nil, t.errf("sn", "node %q is repeated: it is on line %d too", n.Name, line)
		}
		seen[n.Name] = t.line
		if n.CPUMilli, err = t.positive("cpu_milli", maxMilli); err != nil {
			return nil, err
		}
		mib, err := t.positive("memory_mib", maxMiB)
		if err != nil {
			return nil, err
		}
		n.MemoryBytes = mib << 20
		gpus, err := t.count("gpu", maxGPUs)
		if err != nil {
			return nil, err
		}
		n.GPUs = int(gpus)
		nodes = append(nodes, n)
	}
}

// LoadPods reads a pod list file (openb_pod_list_*.csv); see ReadPods.
func LoadPods(path string) ([]Pod, error) {
	f, err := userfile.Open(path, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("load pods: %w", err)
	}
	defer f.Close()
	return ReadPods(path, f)
}

var phases = []string{Pending, Running, Succeeded, Failed, Unknown}

// ReadPods reads a pod list, named name in errors. The header names the
// columns: name, cpu_milli, memory_mib, num_gpu, gpu_milli,
// creation_time and deletion_time are required; gpu_spec, qos, pod_phase
// and scheduled_time are optional. Times are seconds from the start of
// the trace.
//
// A row is malformed, and the read an *Error naming the file, line and
// column with no pods, when a number is not a whole number or is
// negative; the name is empty or repeated; the pod asks for no resources;
// gpu_milli does not fit num_gpu (0 without GPUs, 1 to 1000 for one GPU,
// 1000 for several); gpu_spec has an empty model; pod_phase is not a
// Kubernetes phase; deletion_time is before creation_time; or
// scheduled_time, when set, is not between the two. scheduled_time is
// empty for a pod that was never scheduled.
func ReadPods(name string, r io.Reader) ([]Pod, error) {
	t, err := newTable(name, r, podRequired, podOptional)
	if err != nil {
		return nil, err
	}
	var pods []Pod
	seen := map[string]int{}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return pods, nil
		}
		p, err := t.pod(seen)
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
}

func (t *table) pod(seen map[string]int) (Pod, error) {
	p := Pod{Name: t.value("name"), QoS: t.value("qos"), Phase: t.value("pod_phase")}
	switch line, dup := seen[p.Name]; {
	case p.Name == "":
		return p, t.errf("name", "the pod has no name")
	case dup:
		return p, t.errf("name", "pod %q is repeated: it is on line %d too", p.Name, line)
	}
	seen[p.Name] = t.line
	var err error
	if p.CPUMilli, err = t.count("cpu_milli", maxMilli); err != nil {
		return p, err
	}
	mib, err := t.count("memory_mib", maxMiB)
	if err != nil {
		return p, err
	}
	p.MemoryBytes = mib << 20
	n, err := t.count("num_gpu", maxGPUs)
	if err != nil {
		return p, err
	}
	p.NumGPU = int(n)
	if p.GPUMilli, err = t.count("gpu_milli", math.MaxInt32); err != nil {
		return p, err
	}
	switch {
	case p.NumGPU == 0 && p.GPUMilli != 0:
		return p, t.errf("gpu_milli", "%d, but the pod asks for no GPU (num_gpu 0): want 0", p.GPUMilli)
	case p.NumGPU == 1 && (p.GPUMilli < 1 || p.GPUMilli > 1000):
		return p, t.errf("gpu_milli", "%d is not a share of one GPU: want 1 to 1000", p.GPUMilli)
	case p.NumGPU > 1 && p.GPUMilli != 1000:
		return p, t.errf("gpu_milli", "%d, but a pod of %d GPUs takes each whole: want 1000", p.GPUMilli, p.NumGPU)
	case !p.Resources().Any():
		return p, t.errf("cpu_milli", "the pod asks for no cpu, memory or GPU")
	}
	if spec := t.value("gpu_spec"); spec != "" {
		for _, m := range strings.Split(spec, "|") {
			if m = strings.TrimSpace(m); m == "" {
				return p, t.errf("gpu_spec", "%q has an empty model: want models separated by |", spec)
			}
			p.GPUModels = append(p.GPUModels, m)
		}
	}
	if _, ok := t.col["pod_phase"]; ok && !contains(phases, p.Phase) {
		return p, t.errf("pod_phase", "%q is not a phase: want %s", p.Phase, strings.Join(phases, ", "))
	}
	if p.CreatedAt, err = t.seconds("creation_time"); err != nil {
		return p, err
	}
	if p.DeletedAt, err = t.seconds("deletion_time"); err != nil {
		return p, err
	}
	if p.DeletedAt < p.CreatedAt {
		return p, t.errf("deletion_time", "%s is before creation_time %s", t.value("deletion_time"), t.value("creation_time"))
	}
	if t.value("scheduled_time") != "" {
		if p.ScheduledAt, err = t.seconds("scheduled_time"); err != nil {
			return p, err
		}
		if p.ScheduledAt < p.CreatedAt || p.ScheduledAt > p.DeletedAt {
			return p, t.errf("scheduled_time", "%s is not between creation_time %s and deletion_time %s",
				t.value("scheduled_time"), t.value("creation_time"), t.value("deletion_time"))
		}
		p.Scheduled = true
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// table reads a CSV file by column name.
type table struct {
	name string
	r    *csv.Reader
	col  map[string]int // column index by name
	row  []string
	line int // of the current row
}

func newTable(name string, r io.Reader, required, optional []string) (*table, error) {
	t := &table{name: name, r: csv.NewReader(r), col: map[string]int{}}
	t.r.ReuseRecord = true
	header, err := t.r.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, &Error{File: name, Line: 1, Err: fmt.Errorf("the file is empty: want a header with the columns %s: %w", strings.Join(required, ", "), api.ErrInvalid)}
	case err != nil:
		return nil, t.csvError(err)
	}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark
		}
		if !contains(required, h) && !contains(optional, h) {
			continue // a column this reader does not use
		}
		if _, dup := t.col[h]; dup {
			return nil, &Error{File: name, Line: 1, Column: h, Err: fmt.Errorf("the column is repeated in the header: %w", api.ErrInvalid)}
		}
		t.col[h] = i
	}
	for _, c := range required {
		if _, ok := t.col[c]; !ok {
			return nil, &Error{File: name, Line: 1, Column: c, Err: fmt.Errorf("the header has no such column: want %s: %w", strings.Join(required, ", "), api.ErrInvalid)}
		}
	}
	return t, nil
}

// next reads the next row; false at the end of the file.
func (t *table) next() (bool, error) {
	row, err := t.r.Read()
	switch {
	case errors.Is(err, io.EOF):
		return false, nil
	case err != nil:
		return false, t.csvError(err)
	}
	t.row = row
	t.line, _ = t.r.FieldPos(0)
	return true, nil
}

func (t *table) csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = fmt.Sprintf("%v: the header has %d columns", pe.Err, t.r.FieldsPerRecord)
		}
		if pe.Line != pe.StartLine {
			msg += fmt.Sprintf(" (the row runs to line %d)", pe.Line)
		}
		return &Error{File: t.name, Line: pe.StartLine, Err: fmt.Errorf("%s: %w", msg, api.ErrInvalid)}
	}
	if le := (*userfile.LimitError)(nil); errors.As(err, &le) {
		return err // it names the file and the limit
	}
	return fmt.Errorf("read %s: %w", t.name, err)
}

// value is a column's value in the current row, "" for a column the file
// does not have.
func (t *table) value(col string) string {
	i, ok := t.col[col]
	if !ok {
		return ""
	}
	return strings.TrimSpace(t.row[i])
}

func (t *table) errf(col, format string, args ...any) error {
	line := t.line
	if i, ok := t.col[col]; ok {
		line, _ = t.r.FieldPos(i)
	}
	return &Error{File: t.name, Line: line, Column: col, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), api.ErrInvalid)}
}

var wholeRE = regexp.MustCompile(`^[0-9]+$`)

// count reads a whole number from 0 to hi.
func (t *table) count(col string, hi int64) (int64, error) {
	s := t.value(col)
	if s == "" {
		return 0, t.errf(col, "empty: want a whole number")
	}
	if !wholeRE.MatchString(s) {
		if strings.HasPrefix(s, "-") && wholeRE.MatchString(s[1:]) {
			return 0, t.errf(col, "%s is negative", s)
		}
		return 0, t.errf(col, "%q is not a whole number", s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > hi {
		return 0, t.errf(col, "%s is too large: at most %d", s, hi)
	}
	return v, nil
}

// positive reads a whole number from 1 to hi.
func (t *table) positive(col string, hi int64) (int64, error) {
	v, err := t.count(col, hi)
	if err == nil && v == 0 {
		err = t.errf(col, "0: want more than 0")
	}
	return v, err
}

// seconds reads a time in whole seconds.
func (t *table) seconds(col string) (time.Duration, error) {
	v, err := t.count(col, maxSeconds)
	return time.Duration(v) * time.Second, err
}
