package store_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/store"
)

// TestRestoreAfterCrash logs every event of the scheduler's golden
// scenarios in a store, snapshotting every few events, and "crashes" after
// each event: the core rebuilt from the store (the snapshot, then the
// events after it) has the same state as the core that kept running.
func TestRestoreAfterCrash(t *testing.T) {
	files, err := filepath.Glob("../testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			evs := readEvents(t, file)
			st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			live := scheduler.New(scheduler.Config{})
			for i, data := range evs {
				seq := uint64(i + 1)
				if err := st.Append(seq, data); err != nil {
					t.Fatal(err)
				}
				ev, err := scheduler.UnmarshalEvent(data)
				if err != nil {
					t.Fatal(err)
				}
				live.Step(ev) // refused events are logged and refused again on replay
				if seq%3 == 0 {
					snap, err := live.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					if err := st.SaveSnapshot(seq, snap); err != nil {
						t.Fatal(err)
					}
				}
				got := rebuild(t, st)
				want, err := live.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Fatalf("after event %d the restored core differs (-live +restored):\n%s", seq, diff)
				}
			}
		})
	}
}

// rebuild rebuilds a core from the store and returns its snapshot.
func rebuild(t *testing.T, st store.Store) []byte {
	t.Helper()
	l, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := scheduler.New(scheduler.Config{})
	if l.Snapshot != nil {
		if c, err = scheduler.Restore(l.Snapshot); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range l.Events {
		ev, err := scheduler.UnmarshalEvent(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		c.Step(ev)
	}
	snap, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func readEvents(t *testing.T, file string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var evs [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") {
			evs = append(evs, []byte(line))
		}
	}
	return evs
}
