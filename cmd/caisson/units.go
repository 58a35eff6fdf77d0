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
