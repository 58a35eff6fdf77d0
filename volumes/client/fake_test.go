package client

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// request is what a fake server recorded of one request.
type request struct {
	Method      string
	Path        string
	Host        string
	Accept      string
	ContentType string
	Body        string
}

// answer is what a fake plugin answers to one method.
type answer struct {
	status  int    // 0: 200
	body    string // sent as is
	block   bool   // wait until the request's context ends
	hangup  bool   // close the connection without answering (a crash)
	entered chan struct{}
}

// fakePlugin is a volume plugin that answers from a table and records
// every request.
type fakePlugin struct {
	mu      sync.Mutex
	calls   []request
	answers map[string]answer
}

// defaultAnswers are those of a healthy legacy volume plugin.
var defaultAnswers = map[string]answer{
	"Plugin.Activate":             {body: `{"Implements":["VolumeDriver"]}`},
	"VolumeDriver.Create":         {body: `{}`},
	"VolumeDriver.Remove":         {body: `{}`},
	"VolumeDriver.Mount":          {body: `{"Mountpoint":"/var/lib/fake/v1"}`},
	"VolumeDriver.Unmount":        {body: `{}`},
	"VolumeDriver.Path":           {body: `{"Mountpoint":"/var/lib/fake/v1"}`},
	"VolumeDriver.Get":            {body: `{"Volume":{"Name":"v1","Mountpoint":"/var/lib/fake/v1","CreatedAt":"2024-01-02T03:04:05Z","Status":{"size":"1G"}}}`},
	"VolumeDriver.List":           {body: `{"Volumes":[{"Name":"v1","Mountpoint":"/var/lib/fake/v1"},{"Name":"v2"}]}`},
	"VolumeDriver.Capabilities":   {body: `{"Capabilities":{"Scope":"global"}}`},
	"NetworkDriver.CreateNetwork": {body: `{}`},
}

func newFake(answers map[string]answer) *fakePlugin {
	f := &fakePlugin{answers: map[string]answer{}}
	for k, v := range defaultAnswers {
		f.answers[k] = v
	}
	for k, v := range answers {
		f.answers[k] = v
	}
	return f
}

func (f *fakePlugin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	method := strings.TrimPrefix(r.URL.Path, "/")
	f.mu.Lock()
	f.calls = append(f.calls, request{
		Method:      r.Method,
		Path:        r.URL.Path,
		Host:        r.Host,
		Accept:      r.Header.Get("Accept"),
		ContentType: r.Header.Get("Content-Type"),
		Body:        string(body),
	})
	a, ok := f.answers[method]
	f.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if a.entered != nil {
		close(a.entered)
	}
	switch {
	case a.block:
		<-r.Context().Done()
		return
	case a.hangup:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.1+json")
	if a.status != 0 {
		w.WriteHeader(a.status)
	}
	io.WriteString(w, a.body)
}

func (f *fakePlugin) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.calls...)
}

// shortDir returns a new temporary directory with a short path, so that the
// unix sockets in it stay under the 108-byte limit, and removes it after the
// test.
func shortDir(t *testing.T) string {
	t.Helper()
	parent := ""
	if len(os.TempDir()) > 20 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "vc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serveUnix serves h on a unix socket at path (its directory is created) until
// the test ends.
func serveUnix(t *testing.T, path string, h http.Handler) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, h)
}

// serveTCP serves h on a loopback TCP port and returns host:port.
func serveTCP(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, h)
	return l.Addr().String()
}

func serve(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// staleSocket leaves a unix socket file at path that nobody listens on, as a
// crashed plugin does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// startPlugin serves a fake plugin at sock and returns it.
func startPlugin(t *testing.T, sock string, answers map[string]answer) *fakePlugin {
	t.Helper()
	f := newFake(answers)
	serveUnix(t, sock, f)
	return f
}

// newClient returns a client of a fake plugin called "fake" on a new socket.
func newClient(t *testing.T, answers map[string]answer) (*Client, *fakePlugin) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "fake.sock")
	f := startPlugin(t, sock, answers)
	c, err := New(Plugin{Name: "fake", Addr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// fakeDockerd answers GET /v1.41/plugins and /v1.41/info.
type fakeDockerd struct {
	plugins string
	info    string
	status  int // 0: 200

	mu    sync.Mutex
	paths []string
}

func (d *fakeDockerd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.paths = append(d.paths, r.Method+" "+r.URL.Path)
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if d.status != 0 {
		w.WriteHeader(d.status)
		io.WriteString(w, `{"message":"something broke"}`)
		return
	}
	switch r.URL.Path {
	case "/v1.41/plugins":
		io.WriteString(w, d.plugins)
	case "/v1.41/info":
		io.WriteString(w, d.info)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"page not found"}`)
	}
}

func (d *fakeDockerd) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.paths...)
}

// jsonValue decodes s for a comparison that ignores formatting; "" is nil.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}
