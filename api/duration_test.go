package api

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	for in, want := range map[string]time.Duration{`"1m30s"`: 90 * time.Second, `"0s"`: 0, `1000`: time.Microsecond} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("unmarshal %s = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{`"-1s"`, `"soon"`, `true`, `-5`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); !errors.Is(err, ErrInvalid) {
			t.Errorf("unmarshal %s: err = %v, want ErrInvalid", in, err)
		}
	}
}
