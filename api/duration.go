package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that JSON writes as Go writes durations
// ("30s", "1m30s") and reads from such a string or from a number of
// nanoseconds.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "30s" or a number of nanoseconds. A negative
// duration is an error wrapping ErrInvalid.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v time.Duration
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if v, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("duration %q: want a number with a unit, as 30s or 1m30s: %w", s, ErrInvalid)
		}
	} else {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration %s: want a string such as \"30s\": %w", b, ErrInvalid)
		}
		v = time.Duration(n)
	}
	if v < 0 {
		return fmt.Errorf("duration %s is negative: %w", v, ErrInvalid)
	}
	*d = Duration(v)
	return nil
}
