package api

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFieldError: the field and its value lead the message, Relabel swaps
// only the field's name, and the sentinel and the FieldError stay
// reachable through wrapping.
func TestFieldError(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fe          *FieldError
		label       string
		want        string // Error()
		wantRelabel string
	}{
		{"with a value", &FieldError{Field: "gpus", Value: "9", Err: fmt.Errorf("this host has 8 GPUs: %w", ErrInvalid)}, "--gpus",
			"gpus 9: this host has 8 GPUs: invalid argument", "--gpus 9: this host has 8 GPUs: invalid argument"},
		{"without a value", &FieldError{Field: "resources.memory_bytes", Err: fmt.Errorf("memory limit is negative: %w", ErrInvalid)}, "--memory",
			"resources.memory_bytes: memory limit is negative: invalid argument", "--memory: memory limit is negative: invalid argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.fe.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRelabel, tc.fe.Relabel(tc.label)); diff != "" {
				t.Errorf("Relabel (-want +got):\n%s", diff)
			}
			wrapped := fmt.Errorf("launch: %w", tc.fe)
			if !errors.Is(wrapped, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", wrapped)
			}
			var got *FieldError
			if !errors.As(wrapped, &got) || got != tc.fe {
				t.Errorf("errors.As(%v) = %v; want the FieldError", wrapped, got)
			}
		})
	}
}
