package api

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1024", 1024}, {"512m", 512 << 20}, {"512M", 512 << 20}, {"2g", 2 << 30}, {"1.5g", 3 << 29},
		{"64MiB", 64 << 20}, {"10kb", 10 << 10}, {"1t", 1 << 40}, {"7b", 7}, {"0", 0},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "m", "-1m", "12x", "1..2g", "lots", "1e3", "99999999999p"} {
		if _, err := ParseSize(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSize(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512m", "2g", "1.5GiB", "0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseSize(%q) error %v does not wrap ErrInvalid", s, err)
		}
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, n)
		}
	})
}
