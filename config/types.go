package config

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caisson/caisson/api"
)

// Duration is a time.Duration written as Go writes one: "2m0s", "90s",
// "1h30m". A bare number is refused: it would read as nanoseconds.
type Duration struct{ time.Duration }

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration with its unit.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration with a unit, as 90s or 2m: %w", b, api.ErrInvalid)
	}
	d.Duration = v
	return nil
}

// Size is a number of bytes written as Docker writes sizes: "512m", "32g",
// "1024" (bytes). It is written back exactly, in the largest unit that
// divides it.
type Size int64

// MarshalText writes the size in the largest binary unit that divides it.
func (s Size) MarshalText() ([]byte, error) {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"p", 50}, {"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return []byte(strconv.FormatInt(n>>u.shift, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}

// UnmarshalText reads a size as api.ParseSize does.
func (s *Size) UnmarshalText(b []byte) error {
	n, err := api.ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// String is the size as MarshalText writes it.
func (s Size) String() string {
	b, _ := s.MarshalText()
	return string(b)
}

// Set reads a size (a pflag.Value, so a flag can hold one).
func (s *Size) Set(v string) error { return s.UnmarshalText([]byte(v)) }

// Type names the flag's value in help.
func (s *Size) Type() string { return "size" }
