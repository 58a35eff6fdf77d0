package api

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`)

// ParseSize parses a size the way Docker does: a number of bytes with an
// optional binary unit, "512m", "2g", "1.5GiB", "1024".
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: use a number with an optional unit (b, k, m, g, t, p), e.g. 512m: %w", s, ErrInvalid)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, ErrInvalid)
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[strings.ToLower(m[2])]
	v := n * mult
	if v >= math.MaxInt64 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("size %q is too large: %w", s, ErrInvalid)
	}
	return int64(v), nil
}

// FormatSize prints a size for people: 64MiB, 1.5GiB.
func FormatSize(n uint64) string {
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
