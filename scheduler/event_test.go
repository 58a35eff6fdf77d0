package scheduler

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sampleEvents is one event of every type.
func sampleEvents() []Event {
	return []Event{
		Tick{Now: t0}, genConsumers(),
		AgentAdded{Agent: AgentSpec{ID: "a", Resources: Res(1000, 1<<30), GPUs: []GPUDevice{{ID: "g", Island: 1}}}},
		AgentUpdated{Agent: AgentSpec{ID: "a"}, Unhealthy: true}, AgentLost{ID: "a"},
		SessionSubmitted{Session: SessionSpec{ID: "s", Consumer: "t1", Groups: []TaskGroup{{Name: "g", Resources: Res(1, 1), Count: 1}}}},
		SessionUpdated{Session: "s", Group: "g", Count: 3}, SessionFinished{Session: "s"},
		OfferAccepted{Offer: "o1", Tasks: []AcceptedTask{{Group: "g", Count: 2}}}, OfferDeclined{Offer: "o1", Refuse: 5},
		Suppress{Session: "s"}, Revive{Session: "s"}, TaskFinished{Task: "s/g/1", Failed: true},
	}
}

// FuzzUnmarshalEvent decodes arbitrary bytes as a stored event (what a
// store's log hands back on restore). Whatever it accepts must encode, and
// the encoding must decode to the same event and encode to the same bytes
// again: an event read back from the log is the event that was logged.
func FuzzUnmarshalEvent(f *testing.F) {
	for _, ev := range sampleEvents() {
		b, err := MarshalEvent(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Every event of the golden scenarios.
	files, _ := filepath.Glob("testdata/*.txt")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := sc.Bytes(); bytes.HasPrefix(line, []byte("{")) {
				f.Add(bytes.Clone(line))
			}
		}
	}
	f.Add([]byte(`{"tick":{"now":"2026-01-01T00:00:00+23:59"}}`))
	f.Add([]byte(`{"TICK":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := UnmarshalEvent(data)
		if err != nil {
			return
		}
		enc, err := MarshalEvent(ev)
		if err != nil {
			t.Fatalf("decoded %q as %#v, which does not encode: %v", data, ev, err)
		}
		again, err := UnmarshalEvent(enc)
		if err != nil {
			t.Fatalf("%q decodes, its encoding %q does not: %v", data, enc, err)
		}
		// omitempty writes an empty list as nothing, which reads back as nil.
		if diff := cmp.Diff(ev, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%q: encoding %q decodes to another event (-first +again):\n%s", data, enc, diff)
		}
		enc2, err := MarshalEvent(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%q: encodes to %q, then to %q (%v)", data, enc, enc2, err)
		}
	})
}
