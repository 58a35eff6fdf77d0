package main

import (
	"errors"
	"testing"

	"github.com/caisson/caisson/api"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1024", 1024}, {"512m", 512 << 20}, {"512M", 512 << 20}, {"2g", 2 << 30}, {"1.5g", 3 << 29},
		{"64MiB", 64 << 20}, {"10kb", 10 << 10}, {"1t", 1 << 40}, {"7b", 7}, {"0", 0},
	} {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "m", "-1m", "12x", "1..2g", "lots", "1e3", "99999999999p"} {
		if _, err := parseSize(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("parseSize(%q) = %v, want api.ErrInvalid", bad, err)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	if v, err := parseCPUs("0.5"); err != nil || v != 0.5 {
		t.Errorf("parseCPUs(0.5) = %v, %v", v, err)
	}
	for _, bad := range []string{"", "0", "-1", "abc", "NaN", "Inf"} {
		if _, err := parseCPUs(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("parseCPUs(%q) = %v, want api.ErrInvalid", bad, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512m", "2g", "1.5GiB", "0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("parseSize(%q) error %v does not wrap api.ErrInvalid", s, err)
		}
		if err == nil && n < 0 {
			t.Fatalf("parseSize(%q) = %d < 0", s, n)
		}
	})
}
