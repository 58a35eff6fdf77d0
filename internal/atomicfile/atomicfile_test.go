package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i, content := range []string{"first", "second, longer"} {
		for _, durable := range []bool{true, false} {
			if err := Write(path, []byte(content), 0o600, durable); err != nil {
				t.Fatalf("write %d (durable %v): %v", i, durable, err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Fatalf("read back %q, %v; want %q", got, err, content)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", st.Mode().Perm())
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestWriteFailsCleanly(t *testing.T) {
	// A directory in the way of the rename: the error is returned and the
	// temporary file removed.
	dir := t.TempDir()
	path := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(path, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("x"), 0o600, true); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600, false); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		path    string
		wantErr error
	}{
		{"directory", dir, nil},
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := SyncDir(tc.path); !errors.Is(err, tc.wantErr) {
				t.Fatalf("SyncDir(%s) = %v, want %v", tc.path, err, tc.wantErr)
			}
		})
	}
}
