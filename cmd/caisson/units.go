package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// parseCPUs parses --cpus: a positive decimal number of cores.
func parseCPUs(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("invalid --cpus %q: use a decimal number of CPUs, e.g. 0.5: %w", s, api.ErrInvalid)
	}
	if v <= 0 {
		return 0, fmt.Errorf("invalid --cpus %q: must be greater than 0: %w", s, api.ErrInvalid)
	}
	return v, nil
}

// formatBytes prints a size for people: 64MiB, 1.5GiB.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.4g%ciB", float64(n)/float64(div), "KMGTP"[exp])
}
