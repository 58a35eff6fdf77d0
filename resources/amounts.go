package resources

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// Amounts are the resources named in an admin's --resources or --reserve
// value; a nil field (nil Ports) was not named.
type Amounts struct {
	CPUs        *float64
	MemoryBytes *int64
	DiskBytes   *int64
	// Ports are sorted and merged; named but empty ("ports:[]") is an empty
	// slice, not nil.
	Ports []api.PortRange
	// GPUs can only be 0, in --resources: offer no GPU.
	GPUs *int
}

var (
	decimalRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	portsRE   = regexp.MustCompile(`^\[?([0-9, \-]*)\]?$`)
)

const maxCPUs = 1 << 20

// ParseAmounts parses the Mesos agent's --resources syntax, with Docker's
// sizes: "cpus:8;mem:16g;disk:100g;ports:[31000-32000,40000-40099]".
//
//   - cpus: cores, to a thousandth (1.5);
//   - mem (or memory) and disk: a size with a unit (512m, 16g, 1t, 4096b) or
//     0; a bare number is refused, since Mesos reads it as megabytes;
//   - ports: ranges in brackets, a single port as [8080];
//   - gpus: only 0, to offer no GPU.
//
// Mesos's default role may be written (cpus(*):8); other roles are refused.
// An empty value names nothing; an empty item (";;", a ";" at either end)
// and overlapping port ranges are refused. Errors wrap api.ErrInvalid.
func ParseAmounts(s string) (Amounts, error) {
	var a Amounts
	if strings.TrimSpace(s) == "" {
		return a, nil
	}
	seen := map[string]bool{}
	for i, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			return a, fmt.Errorf("%q: item %d is empty: want NAME:VALUE items separated by one \";\", as in cpus:8;mem:16g: %w", s, i+1, api.ErrInvalid)
		}
		name, val, ok := strings.Cut(item, ":")
		if !ok {
			return a, fmt.Errorf("%q: want NAME:VALUE, as in cpus:8;mem:16g: %w", item, api.ErrInvalid)
		}
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if base, role, hasRole := strings.Cut(name, "("); hasRole {
			if role != "*)" {
				return a, fmt.Errorf("%q: roles are not supported, only (*): %w", item, api.ErrInvalid)
			}
			name = base
		}
		if name == "memory" {
			name = "mem"
		}
		if seen[name] {
			return a, fmt.Errorf("%q: %s is named twice: %w", item, name, api.ErrInvalid)
		}
		seen[name] = true
		switch name {
		case "cpus":
			f, err := strconv.ParseFloat(val, 64)
			if !decimalRE.MatchString(val) || err != nil || f > maxCPUs {
				return a, fmt.Errorf("%q: cpus must be a number of cores such as 8 or 1.5: %w", item, api.ErrInvalid)
			}
			f = math.Round(f*1000) / 1000
			a.CPUs = &f
		case "mem", "disk":
			n, err := parseAmountSize(val)
			if err != nil {
				return a, fmt.Errorf("%q: %w", item, err)
			}
			if name == "mem" {
				a.MemoryBytes = &n
			} else {
				a.DiskBytes = &n
			}
		case "ports":
			ports, err := parsePorts(val)
			if err != nil {
				return a, fmt.Errorf("%q: %w", item, err)
			}
			a.Ports = ports
		case "gpus":
			if val != "0" {
				return a, fmt.Errorf("%q: only gpus:0 (offer no GPU) can be given: %w", item, api.ErrInvalid)
			}
			zero := 0
			a.GPUs = &zero
		default:
			return a, fmt.Errorf("%q: unknown resource %q: use cpus, mem, disk, ports or gpus: %w", item, name, api.ErrInvalid)
		}
	}
	return a, nil
}

func parseAmountSize(val string) (int64, error) {
	if val == "0" {
		return 0, nil
	}
	if decimalRE.MatchString(val) {
		return 0, fmt.Errorf("%q has no unit: write 16g or 16384m (Mesos counts a bare number in megabytes): %w", val, api.ErrInvalid)
	}
	return api.ParseSize(val)
}

// parsePorts parses "[31000-32000,40000]" into sorted ranges, those that
// touch merged ([80-89,90] is [80-90]). Ranges that overlap are refused,
// naming both: one of them is a mistake.
func parsePorts(val string) ([]api.PortRange, error) {
	m := portsRE.FindStringSubmatch(val)
	if m == nil || val == "" || strings.HasPrefix(val, "[") != strings.HasSuffix(val, "]") {
		return nil, fmt.Errorf("ports %q: want ranges in brackets, as in [31000-32000,40000-40099]: %w", val, api.ErrInvalid)
	}
	var set portSet
	if strings.TrimSpace(m[1]) == "" {
		return set.ranges(), nil // [] names no port
	}
	var seen []api.PortRange
	for _, r := range strings.Split(m[1], ",") {
		pr, err := api.ParsePortRange(r)
		if err != nil {
			return nil, err
		}
		if set.any(pr) {
			for _, o := range seen {
				if o.Overlaps(pr) {
					return nil, fmt.Errorf("ports %s: %w", val, &api.PortOverlapError{First: o, Second: pr})
				}
			}
		}
		set.add(pr)
		seen = append(seen, pr)
	}
	return set.ranges(), nil
}

// String writes the amounts back in ParseAmounts's syntax.
func (a Amounts) String() string {
	var parts []string
	if a.CPUs != nil {
		parts = append(parts, "cpus:"+strconv.FormatFloat(*a.CPUs, 'f', -1, 64))
	}
	if a.MemoryBytes != nil {
		parts = append(parts, "mem:"+formatAmountSize(*a.MemoryBytes))
	}
	if a.DiskBytes != nil {
		parts = append(parts, "disk:"+formatAmountSize(*a.DiskBytes))
	}
	if a.Ports != nil {
		parts = append(parts, "ports:"+FormatPorts(a.Ports))
	}
	if a.GPUs != nil {
		parts = append(parts, "gpus:"+strconv.Itoa(*a.GPUs))
	}
	return strings.Join(parts, ";")
}

// FormatPorts writes ranges as Mesos does: [31000-32000,40000].
func FormatPorts(ports []api.PortRange) string {
	rs := make([]string, 0, len(ports))
	for _, r := range ports {
		if r.Begin == r.End {
			rs = append(rs, strconv.Itoa(r.Begin))
		} else {
			rs = append(rs, fmt.Sprintf("%d-%d", r.Begin, r.End))
		}
	}
	return "[" + strings.Join(rs, ",") + "]"
}

// formatAmountSize writes a size in the largest unit that holds it exactly.
func formatAmountSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		shift uint
		unit  string
	}{{50, "p"}, {40, "t"}, {30, "g"}, {20, "m"}, {10, "k"}} {
		if n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.unit)
		}
	}
	return fmt.Sprintf("%db", n)
}

// replace puts the named amounts in place of the detected ones.
func (a Amounts) replace(r *api.NodeResources) {
	if a.CPUs != nil {
		r.CPUs = *a.CPUs
	}
	if a.MemoryBytes != nil {
		r.MemoryBytes = *a.MemoryBytes
	}
	if a.DiskBytes != nil {
		r.DiskBytes = *a.DiskBytes
	}
	if a.Ports != nil {
		r.Ports = append([]api.PortRange{}, a.Ports...)
	}
	if a.GPUs != nil {
		r.GPUs = []api.GPU{}
	}
}

// subtract takes a reservation away. Reserving more than there is, or a
// port that is not offered, is an error: a host left with nothing to offer
// is a mistake better caught when the agent starts.
func (a Amounts) subtract(r *api.NodeResources) error {
	if a.CPUs != nil {
		if *a.CPUs > r.CPUs {
			return fmt.Errorf("%g cpus exceed the %g there are: %w", *a.CPUs, r.CPUs, api.ErrInvalid)
		}
		r.CPUs = math.Round((r.CPUs-*a.CPUs)*1000) / 1000
	}
	if a.MemoryBytes != nil {
		if *a.MemoryBytes > r.MemoryBytes {
			return fmt.Errorf("mem %s exceeds the %s there is: %w", api.FormatSize(uint64(*a.MemoryBytes)), api.FormatSize(uint64(r.MemoryBytes)), api.ErrInvalid)
		}
		r.MemoryBytes -= *a.MemoryBytes
	}
	if a.DiskBytes != nil {
		if *a.DiskBytes > r.DiskBytes {
			return fmt.Errorf("disk %s exceeds the %s there is: %w", api.FormatSize(uint64(*a.DiskBytes)), api.FormatSize(uint64(r.DiskBytes)), api.ErrInvalid)
		}
		r.DiskBytes -= *a.DiskBytes
	}
	if len(a.Ports) > 0 {
		var set portSet
		for _, p := range r.Ports {
			set.add(p)
		}
		for _, p := range a.Ports {
			for port := p.Begin; port <= p.End; port++ {
				if !set[port] {
					return fmt.Errorf("port %d is not offered (%s): %w", port, FormatPorts(r.Ports), api.ErrInvalid)
				}
				set[port] = false
			}
		}
		r.Ports = set.ranges()
	}
	return nil
}

// portSet is a set of ports, indexed by port.
type portSet [65536]bool

// any reports whether the set holds a port of r.
func (s *portSet) any(r api.PortRange) bool {
	for p := max(r.Begin, 1); p <= min(r.End, 65535); p++ {
		if s[p] {
			return true
		}
	}
	return false
}

func (s *portSet) add(r api.PortRange) {
	for p := max(r.Begin, 1); p <= min(r.End, 65535); p++ {
		s[p] = true
	}
}

// ranges returns the set as sorted, merged ranges; never nil.
func (s *portSet) ranges() []api.PortRange {
	out := []api.PortRange{}
	for p := 1; p <= 65535; p++ {
		if !s[p] {
			continue
		}
		b := p
		for p < 65535 && s[p+1] {
			p++
		}
		out = append(out, api.PortRange{Begin: b, End: p})
	}
	return out
}
