package containerizer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLogRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &logWriter{f: f}
	long := strings.Repeat("x", maxLogLine+10)
	w.copy("stdout", ioNopCloser{strings.NewReader("hello\nworld\n" + long + "\nno newline")})
	w.copy("stderr", ioNopCloser{strings.NewReader("oops\n")})
	_ = f.Close()

	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out, errb bytes.Buffer
	stop := make(chan struct{})
	close(stop)
	if err := followLog(context.Background(), r, LogOptions{Stdout: &out, Stderr: &errb}, stop); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("hello\nworld\n"+long+"\nno newline", out.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if errb.String() != "oops\n" {
		t.Errorf("stderr = %q", errb.String())
	}
}

type ioNopCloser struct{ *strings.Reader }

func (ioNopCloser) Close() error { return nil }
