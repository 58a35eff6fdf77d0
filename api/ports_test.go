package api

import (
	"errors"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]PortRange{"31000-32000": {31000, 32000}, "8080": {8080, 8080}, " 1 - 2 ": {1, 2}, "65535": {65535, 65535}} {
		got, err := ParsePortRange(in)
		if err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParsePortRange(got.String()); err != nil || back != got || got.Len() != want.End-want.Begin+1 {
			t.Errorf("%q: String %q reads back as %v, %v; Len %d", in, got, back, err, got.Len())
		}
	}
	for _, in := range []string{"", "0", "0-10", "10-5", "65536", "a-b", "1-2-3", "-5"} {
		if got, err := ParsePortRange(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, %v; want ErrInvalid", in, got, err)
		}
	}
}
