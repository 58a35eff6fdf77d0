package api

import (
	"fmt"
	"strconv"
	"strings"
)

// GPURequest is what a container asks of the GPU isolator: a number of
// GPUs (the best-connected free ones), all of the host's, or named ones.
// Exactly one of Count, All and UUIDs is set.
type GPURequest struct {
	Count int      `json:"count,omitempty"`
	All   bool     `json:"all,omitempty"`
	UUIDs []string `json:"uuids,omitempty"`
}

// String is the request as --gpus takes it.
func (r GPURequest) String() string {
	switch {
	case r.All:
		return "all"
	case len(r.UUIDs) > 0:
		return strings.Join(r.UUIDs, ",")
	}
	return strconv.Itoa(r.Count)
}

// ParseGPURequest parses --gpus: a whole number of GPUs ("2"), "all", or a
// comma-separated list of GPU UUIDs ("GPU-…" as nvidia-smi -L prints them).
// "0" and "" ask for none (nil). Anything else is an error wrapping
// ErrInvalid.
func ParseGPURequest(s string) (*GPURequest, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) error {
		return fmt.Errorf("--gpus %q: %s; want a whole number of GPUs, all, or GPU UUIDs separated by commas: %w", s, why, ErrInvalid)
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
	}
	r := &GPURequest{}
	seen := map[string]bool{}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "GPU-") || len(u) == len("GPU-") || strings.ContainsAny(u, " \t/=") {
			return nil, bad(fmt.Sprintf("%q is not a GPU UUID", u))
		}
		if seen[u] {
			return nil, bad(fmt.Sprintf("%s is named twice", u))
		}
		seen[u] = true
		r.UUIDs = append(r.UUIDs, u)
	}
	return r, nil
}

// GPUUsage is one GPU a container holds and its counters (nil: the device
// does not report it). GPUs are not shared, so the GPU's counters are the
// container's.
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
