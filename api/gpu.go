package api

import (
	"fmt"
	"strconv"
	"strings"
)

// GPURequest is what a container asks of the GPU isolator: a number of
// GPUs (the best-connected free ones), all of the host's, named GPUs or
// MIG devices, or a number of MIG devices of one profile. Exactly one of
// Count, All and UUIDs is set; MIGProfile comes with Count, the number of
// MIG devices of that profile.
type GPURequest struct {
	Count int      `json:"count,omitempty"`
	All   bool     `json:"all,omitempty"`
	UUIDs []string `json:"uuids,omitempty"`
	// MIGProfile asks for Count MIG devices of this profile ("1g.5gb"), as
	// Kubernetes' mixed strategy asks for nvidia.com/mig-1g.5gb.
	MIGProfile string `json:"mig_profile,omitempty"`
}

// String is the request as ParseGPURequest takes it.
func (r GPURequest) String() string {
	switch {
	case r.All:
		return "all"
	case len(r.UUIDs) > 0:
		return strings.Join(r.UUIDs, ",")
	case r.MIGProfile != "" && r.Count == 1:
		return migPrefix + r.MIGProfile
	case r.MIGProfile != "":
		return migPrefix + r.MIGProfile + ":" + strconv.Itoa(r.Count)
	}
	return strconv.Itoa(r.Count)
}

// migPrefix starts a request for MIG devices by profile.
const migPrefix = "mig-"

// ParseGPURequest parses a GPU request as a user writes it: a whole number of GPUs ("2"), "all", a
// comma-separated list of GPU and MIG device UUIDs ("GPU-…" and "MIG-…" as
// nvidia-smi -L prints them), or "mig-PROFILE[:N]": N MIG devices (1 when
// N is left out) of a MIG profile ("mig-1g.5gb", "mig-3g.20gb:2"). "0" and
// "" ask for none (nil). Anything else is a *FieldError about "gpus" that
// wraps ErrInvalid.
func ParseGPURequest(s string) (*GPURequest, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) error {
		return &FieldError{Field: "gpus", Value: strconv.Quote(s),
			Err: fmt.Errorf("%s; want a whole number of GPUs, all, GPU or MIG device UUIDs separated by commas, or mig-PROFILE[:N]: %w", why, ErrInvalid)}
	}
	switch {
	case s == "" || s == "0":
		return nil, nil
	case s == "all":
		return &GPURequest{All: true}, nil
	case s[0] >= '0' && s[0] <= '9' || s[0] == '-' || s[0] == '+' || s[0] == '.':
		n, err := strconv.Atoi(s)
		switch {
		case err != nil && strings.ContainsAny(s, ".eE"):
			return nil, bad("GPUs are not shared, so a count must be whole")
		case err != nil:
			return nil, bad("not a number")
		case n < 0:
			return nil, bad("a count cannot be negative")
		case n == 0:
			return nil, nil
		}
		return &GPURequest{Count: n}, nil
	case strings.HasPrefix(s, migPrefix):
		profile, count, hasCount := strings.Cut(strings.TrimPrefix(s, migPrefix), ":")
		if why := migProfileProblem(profile); why != "" {
			return nil, bad(why)
		}
		n := 1
		if hasCount {
			var err error
			if n, err = strconv.Atoi(count); err != nil || n < 1 || count[0] == '+' || count[0] == '0' {
				return nil, bad(fmt.Sprintf("the number of MIG devices %q is not a whole number of at least 1", count))
			}
		}
		return &GPURequest{MIGProfile: profile, Count: n}, nil
	}
	r := &GPURequest{}
	seen := map[string]bool{}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if !IsGPUUUID(u) && !IsMIGUUID(u) {
			return nil, bad(fmt.Sprintf("%q is not a GPU or MIG device UUID", u))
		}
		if seen[u] {
			return nil, bad(fmt.Sprintf("%s is named twice", u))
		}
		seen[u] = true
		r.UUIDs = append(r.UUIDs, u)
	}
	return r, nil
}

// IsGPUUUID reports whether s looks like a GPU's UUID: "GPU-" and more.
func IsGPUUUID(s string) bool { return uuidLike(s, "GPU-") }

// IsMIGUUID reports whether s looks like a MIG device's UUID as drivers since
// R470 write it: "MIG-" and more. (The older "MIG-GPU-…/GI/CI" form is not
// taken: a CDI device name cannot hold a slash.)
func IsMIGUUID(s string) bool { return uuidLike(s, "MIG-") }

func uuidLike(s, prefix string) bool {
	return strings.HasPrefix(s, prefix) && len(s) > len(prefix) && !strings.ContainsAny(s, " \t/=,")
}

// CheckMIGProfile checks that p is a MIG profile name as NVIDIA writes them
// (go-nvlib's MigProfile): "<g>g.<gb>gb" for a GPU instance with one
// compute instance of its size, "<c>c.<g>g.<gb>gb" for a smaller compute
// instance in it (c < g), either followed by "+attr[,attr]" or "-attr"
// ("1g.5gb+me", "1g.10gb-me", "1g.12gb+me.all"). Numbers are whole and
// written without leading zeros, so that one profile has one name. The
// error says what is wrong; it wraps ErrInvalid.
func CheckMIGProfile(p string) error {
	if why := migProfileProblem(p); why != "" {
		return fmt.Errorf("%s: %w", why, ErrInvalid)
	}
	return nil
}

// migProfileProblem says what is wrong with a MIG profile name, "" for
// nothing; the callers add ErrInvalid, once.
func migProfileProblem(p string) string {
	bad := func(why string) string {
		return fmt.Sprintf("MIG profile %q %s (want [<c>c.]<g>g.<gb>gb[+attr], as 1g.5gb or 1c.3g.20gb)", p, why)
	}
	if p == "" {
		return bad("is empty")
	}
	base, attrs := p, ""
	if i := strings.IndexAny(p, "+-"); i >= 0 {
		base, attrs = p[:i], p[i+1:]
		if strings.ContainsAny(attrs, "+-") {
			return bad("has more than one attribute list")
		}
		seen := map[string]bool{}
		for _, a := range strings.Split(attrs, ",") {
			if !migAttribute(a) {
				return bad(fmt.Sprintf("has an attribute %q that is not a lowercase word (me, me.all, gfx)", a))
			}
			if seen[a] {
				return bad(fmt.Sprintf("names attribute %q twice", a))
			}
			seen[a] = true
		}
	}
	fields := strings.Split(base, ".")
	if len(fields) != 2 && len(fields) != 3 {
		return bad("does not have 2 or 3 fields separated by dots")
	}
	var c int
	cField := ""
	if len(fields) == 3 {
		var ok bool
		if c, ok = migField(fields[0], "c"); !ok {
			return bad(fmt.Sprintf("field %q is not <n>c", fields[0]))
		}
		cField, fields = fields[0], fields[1:]
	}
	g, ok := migField(fields[0], "g")
	if !ok {
		return bad(fmt.Sprintf("field %q is not <n>g", fields[0]))
	}
	if _, ok := migField(fields[1], "gb"); !ok {
		return bad(fmt.Sprintf("field %q is not <n>gb", fields[1]))
	}
	if c != 0 && c >= g {
		if c == g {
			return bad("names a compute instance the size of its GPU instance; write it " + strings.TrimPrefix(p, cField+"."))
		}
		return bad("has a compute instance larger than its GPU instance")
	}
	return ""
}

// migField parses "<n><unit>" with n a whole number from 1, no leading
// zero and no sign.
func migField(s, unit string) (int, bool) {
	num, ok := strings.CutSuffix(s, unit)
	if !ok || num == "" || num[0] == '0' || len(num) > 6 {
		return 0, false
	}
	for _, r := range num {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// migAttribute: lowercase letters and digits, dots inside, not starting
// with a digit.
func migAttribute(a string) bool {
	if a == "" || a[0] == '.' || a[len(a)-1] == '.' || a[0] >= '0' && a[0] <= '9' || strings.Contains(a, "..") {
		return false
	}
	for _, r := range a {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// ParseMIGLayout parses the MIG layout of a simulated GPU:
// MIG profiles separated by commas ("1g.5gb,1g.5gb,2g.10gb,3g.20gb"), one
// GPU instance each, or "off" (nil: MIG mode off). Errors wrap ErrInvalid.
func ParseMIGLayout(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return nil, nil
	}
	if s == "" {
		return nil, fmt.Errorf("MIG layout \"\": want MIG profiles separated by commas (1g.5gb,3g.20gb), or off: %w", ErrInvalid)
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if err := CheckMIGProfile(p); err != nil {
			return nil, fmt.Errorf("MIG layout %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// GPUUsage is one GPU or MIG device a container holds and its counters (nil:
// the device does not report it). GPUs are not shared, so the GPU's
// counters are the container's. Index is the GPU's, or a MIG device's
// parent's.
type GPUUsage struct {
	UUID                     string  `json:"uuid"`
	Index                    int     `json:"index"`
	UtilizationPercent       *uint32 `json:"utilization_percent,omitempty"`
	MemoryUtilizationPercent *uint32 `json:"memory_utilization_percent,omitempty"`
	MemoryUsedBytes          *uint64 `json:"memory_used_bytes,omitempty"`
	MemoryTotalBytes         *uint64 `json:"memory_total_bytes,omitempty"`
	PowerMilliwatts          *uint32 `json:"power_milliwatts,omitempty"`
	TemperatureCelsius       *uint32 `json:"temperature_celsius,omitempty"`
	ECCCorrected             *uint64 `json:"ecc_corrected,omitempty"`
	ECCUncorrected           *uint64 `json:"ecc_uncorrected,omitempty"`
}
