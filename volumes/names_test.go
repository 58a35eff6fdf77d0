package volumes

import (
	"errors"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "data", "db-1.backup_2", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x", "x\x00y", "-x", ".hidden", "a b", strings.Repeat("x", MaxNameLen+1), "é"} {
		if err := ValidateName(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want api.ErrInvalid", bad, err)
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "..", "a/b", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) != nil {
			return
		}
		if s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || len(s) > MaxNameLen {
			t.Fatalf("ValidateName accepted %q", s)
		}
	})
}
