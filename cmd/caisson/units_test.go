package main

import (
	"errors"
	"testing"

	"github.com/caisson/caisson/api"
)

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
