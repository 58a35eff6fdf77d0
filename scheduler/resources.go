package scheduler

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Kind is one dimension of a resource vector.
type Kind int

// The dimensions of a resource vector.
const (
	CPU    Kind = iota // millicores: 1000 is one core
	Memory             // bytes
	Disk               // bytes
	Ports              // a number of ports
	GPU                // milli-GPUs: 1000 is one whole device
	NumKinds
)

var kindNames = [NumKinds]string{"cpu_milli", "memory_bytes", "disk_bytes", "ports", "gpu_milli"}

// String is the kind's JSON name.
func (k Kind) String() string {
	if k < 0 || k >= NumKinds {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Resources is a resource vector. The zero value is nothing. Arithmetic is
// by value: vectors are small and never shared.
type Resources [NumKinds]int64

// Res builds a vector from the common dimensions: cores in millicores and
// memory in bytes.
func Res(cpuMilli, memBytes int64) Resources {
	var r Resources
	r[CPU], r[Memory] = cpuMilli, memBytes
	return r
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	for k := range r {
		r[k] += o[k]
	}
	return r
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	for k := range r {
		r[k] -= o[k]
	}
	return r
}

// Scale returns r * n.
func (r Resources) Scale(n int64) Resources {
	for k := range r {
		r[k] *= n
	}
	return r
}

// Min returns the smaller of r and o in each dimension.
func (r Resources) Min(o Resources) Resources {
	for k := range r {
		r[k] = min(r[k], o[k])
	}
	return r
}

// Max returns the larger of r and o in each dimension.
func (r Resources) Max(o Resources) Resources {
	for k := range r {
		r[k] = max(r[k], o[k])
	}
	return r
}

// Clamp returns r with negative dimensions set to zero.
func (r Resources) Clamp() Resources {
	for k := range r {
		r[k] = max(r[k], 0)
	}
	return r
}

// Fits reports whether r fits in o: no dimension of r exceeds o's.
func (r Resources) Fits(o Resources) bool {
	for k := range r {
		if r[k] > o[k] {
			return false
		}
	}
	return true
}

// IsZero reports whether every dimension is zero.
func (r Resources) IsZero() bool { return r == Resources{} }

// Negative reports whether some dimension is below zero.
func (r Resources) Negative() bool {
	for _, v := range r {
		if v < 0 {
			return true
		}
	}
	return false
}

// Any reports whether some dimension is above zero.
func (r Resources) Any() bool {
	for _, v := range r {
		if v > 0 {
			return true
		}
	}
	return false
}

// Share is the dominant share of r in total: the largest r[k]/total[k]
// over the dimensions total has. Ports are left out: they are plentiful
// and would only add noise to fairness.
func (r Resources) Share(total Resources) float64 {
	s := 0.0
	for k := range r {
		if Kind(k) == Ports || total[k] <= 0 {
			continue
		}
		s = max(s, float64(r[k])/float64(total[k]))
	}
	return s
}

// String prints the non-zero dimensions for people: "cpu=4 mem=16GiB gpu=1".
func (r Resources) String() string {
	var b strings.Builder
	add := func(s string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	if r[CPU] != 0 {
		add("cpu=" + milli(r[CPU]))
	}
	if r[Memory] != 0 {
		add("mem=" + bytesString(r[Memory]))
	}
	if r[Disk] != 0 {
		add("disk=" + bytesString(r[Disk]))
	}
	if r[Ports] != 0 {
		add(fmt.Sprintf("ports=%d", r[Ports]))
	}
	if r[GPU] != 0 {
		add("gpu=" + milli(r[GPU]))
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func milli(v int64) string {
	if v%1000 == 0 {
		return fmt.Sprintf("%d", v/1000)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", float64(v)/1000), "0"), ".")
}

func bytesString(v int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for v != 0 && v%1024 == 0 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%d%s", v, units[i])
}

// MarshalJSON writes the vector as an object of its non-zero dimensions.
func (r Resources) MarshalJSON() ([]byte, error) {
	m := make(map[string]int64, NumKinds)
	for k, v := range r {
		if v != 0 {
			m[kindNames[k]] = v
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes; an unknown dimension is an
// error.
func (r *Resources) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*r = Resources{}
next:
	for name, v := range m {
		for k, n := range kindNames {
			if n == name {
				r[k] = v
				continue next
			}
		}
		return fmt.Errorf("unknown resource %q: want one of %s", name, strings.Join(kindNames[:], ", "))
	}
	return nil
}
