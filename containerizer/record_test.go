package containerizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testRecord() *record {
	started := time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC)
	return &record{
		Version: recordVersion, ID: testID, Name: "web", Phase: phaseRunning, Runtime: "runc",
		Isolators: []string{"cgroups/all"}, Pid: 4242, MonitorPid: 4241, MonitorID: 99,
		CreatedAt: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), StartedAt: &started,
		Spec: api.ContainerSpec{Name: "web", Rootfs: "/srv/rootfs", Networks: []string{"none"}},
	}
}

func testContainerizer(t *testing.T) *Containerizer {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "containers", testID), 0o700); err != nil {
		t.Fatal(err)
	}
	return &Containerizer{cfg: Config{Root: root}}
}

// Every way a checkpoint can be damaged makes it unreadable, never absent:
// a container is destroyed only for lack of a checkpoint, not for one that
// cannot be read.
func TestLoadRecordUnreadable(t *testing.T) {
	valid, err := json.Marshal(testRecord())
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"truncated", valid[:len(valid)/2]},
		{"empty", nil},
		{"garbage", []byte("\x00\x01not json at all\xff")},
		{"trailing garbage", append(append([]byte(nil), valid...), "}x"...)},
		{"null", []byte("null")},
		{"empty object", []byte("{}")},
		{"array", []byte(`[1, 2, 3]`)},
		{"string", []byte(`"container"`)},
		{"phase of the wrong type", with(func(m map[string]any) { m["phase"] = 3 })},
		{"pid of the wrong type", with(func(m map[string]any) { m["pid"] = "4242" })},
		{"spec of the wrong type", with(func(m map[string]any) { m["spec"] = []any{"x"} })},
		{"unknown phase", with(func(m map[string]any) { m["phase"] = "paused" })},
		{"no phase", with(func(m map[string]any) { delete(m, "phase") })},
		{"newer version", with(func(m map[string]any) { m["version"] = recordVersion + 1 })},
		{"no version", with(func(m map[string]any) { delete(m, "version") })},
		{"another container's", with(func(m map[string]any) { m["id"] = strings.Repeat("f", 64) })},
		{"bad name", with(func(m map[string]any) { m["name"] = "../x" })},
		{"negative pid", with(func(m map[string]any) { m["pid"] = -1 })},
		{"running without a pid", with(func(m map[string]any) { delete(m, "pid") })},
		{"exited without a termination", with(func(m map[string]any) { m["phase"] = "exited" })},
		{"no runtime", with(func(m map[string]any) { delete(m, "runtime") })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testContainerizer(t)
			if err := os.WriteFile(c.recordPath(testID), tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := c.loadRecord(testID)
			if !errors.Is(err, api.ErrUnreadable) {
				t.Fatalf("loadRecord = %v, want an error wrapping api.ErrUnreadable", err)
			}
			if errors.Is(err, api.ErrNotFound) {
				t.Fatalf("loadRecord = %v: an unreadable checkpoint must not read as a missing container", err)
			}
		})
	}
}

func TestLoadRecord(t *testing.T) {
	c := testContainerizer(t)
	want := testRecord()
	if err := c.saveRecord(want); err != nil {
		t.Fatal(err)
	}
	got, err := c.loadRecord(testID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(record{})); diff != "" {
		t.Errorf("loadRecord (-want +got):\n%s", diff)
	}
}

// A directory without a checkpoint is a reservation that died before its
// first checkpoint (nothing ran), unless it holds more: then its checkpoint
// was lost, and the container is quarantined like one whose checkpoint is
// damaged.
func TestLoadRecordMissing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  error
	}{
		{"empty directory", nil, api.ErrNotFound},
		{"reservation", []string{"lock"}, api.ErrNotFound},
		{"reservation writing its checkpoint", []string{"lock", ".container.json.tmp-123"}, api.ErrNotFound},
		{"bundle", []string{"lock", "bundle/config.json"}, api.ErrUnreadable},
		{"writable layer", []string{"lock", "fs/upper/data"}, api.ErrUnreadable},
		{"log", []string{"lock", "container.log"}, api.ErrUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testContainerizer(t)
			for _, f := range tc.files {
				p := filepath.Join(c.containerDir(testID), f)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.loadRecord(testID); !errors.Is(err, tc.want) {
				t.Fatalf("loadRecord = %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
	t.Run("no directory", func(t *testing.T) {
		c := &Containerizer{cfg: Config{Root: t.TempDir()}}
		if _, err := c.loadRecord(testID); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("loadRecord = %v, want an error wrapping api.ErrNotFound", err)
		}
	})
}
