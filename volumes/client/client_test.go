package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestNew(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr error
	}{
		{addr: "unix:///run/docker/plugins/x.sock"},
		{addr: "unix:/run/x.sock"},
		{addr: "tcp://127.0.0.1:8080"},
		{addr: "http://localhost:8080"},
		{addr: "https://plugin.example:8443"},
		{addr: "", wantErr: api.ErrInvalid},
		{addr: "/run/x.sock", wantErr: api.ErrInvalid},
		{addr: "unix://relative.sock", wantErr: api.ErrInvalid},
		{addr: "unix://", wantErr: api.ErrInvalid},
		{addr: "tcp://", wantErr: api.ErrInvalid},
		{addr: "npipe:////./pipe/x", wantErr: api.ErrInvalid},
		{addr: "ftp://host:21", wantErr: api.ErrInvalid},
		{addr: "unix:///x\x00y", wantErr: api.ErrInvalid},
		{addr: "://bad", wantErr: api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.addr), func(t *testing.T) {
			p := Plugin{Name: "p", Addr: tt.addr}
			c, err := New(p)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("New(%q) error = %v, want %v", tt.addr, err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(p, c.Plugin()); diff != "" {
					t.Errorf("Plugin() (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestNewTLSFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		tls  *TLSConfig
	}{
		{"missing CA file", &TLSConfig{CAFile: filepath.Join(dir, "none.pem")}},
		{"missing key pair", &TLSConfig{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Plugin{Name: "p", Addr: "https://h:1", TLS: tt.tls}); err == nil {
				t.Fatal("New succeeded, want an error")
			}
			// TLS is used only with https, as in dockerd.
			if _, err := New(Plugin{Name: "p", Addr: "tcp://h:1", TLS: tt.tls}); err != nil {
				t.Fatalf("New with tcp:// = %v, want no error", err)
			}
		})
	}
}

func TestActivate(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		wantErr error
	}{
		{name: "volume driver", answer: answer{body: `{"Implements":["VolumeDriver"]}`}},
		{name: "among others", answer: answer{body: `{"Implements":["authz","VolumeDriver"]}`}},
		{name: "network driver only", answer: answer{body: `{"Implements":["NetworkDriver"]}`}, wantErr: api.ErrInvalid},
		{name: "nothing", answer: answer{body: `{}`}, wantErr: api.ErrInvalid},
		{name: "not json", answer: answer{body: `<html>`}, wantErr: api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newClient(t, map[string]answer{"Plugin.Activate": tt.answer})
			err := c.Activate(t.Context())
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Activate() = %v, want %v", err, tt.wantErr)
			}
			want := []request{{Method: "POST", Path: "/Plugin.Activate", Host: pluginHost, Accept: acceptType, ContentType: contentType}}
			if diff := cmp.Diff(want, f.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestActivatePluginError(t *testing.T) {
	c, _ := newClient(t, map[string]answer{"Plugin.Activate": {status: 500, body: `{"Err":"starting"}`}})
	err := c.Activate(t.Context())
	var perr *PluginError
	if !errors.As(err, &perr) {
		t.Fatalf("Activate() = %v, want a *PluginError", err)
	}
	want := &PluginError{Plugin: "fake", Method: "Plugin.Activate", Msg: "starting", Status: 500}
	if diff := cmp.Diff(want, perr, cmpopts.IgnoreUnexported(PluginError{})); diff != "" {
		t.Errorf("PluginError (-want +got):\n%s", diff)
	}
}

func TestRequests(t *testing.T) {
	tests := []struct {
		name     string
		call     func(context.Context, *Client) (any, error)
		wantPath string
		wantBody string
		want     any
	}{
		{
			name:     "Activate",
			call:     func(ctx context.Context, c *Client) (any, error) { return nil, c.Activate(ctx) },
			wantPath: "/Plugin.Activate",
		},
		{
			name: "Create",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Create(ctx, "v1", map[string]string{"size": "1G", "uid": "1000"})
			},
			wantPath: "/VolumeDriver.Create",
			wantBody: `{"Name":"v1","Opts":{"size":"1G","uid":"1000"}}`,
		},
		{
			name:     "Create without options",
			call:     func(ctx context.Context, c *Client) (any, error) { return nil, c.Create(ctx, "v1", nil) },
			wantPath: "/VolumeDriver.Create",
			wantBody: `{"Name":"v1","Opts":{}}`,
		},
		{
			name:     "Remove",
			call:     func(ctx context.Context, c *Client) (any, error) { return nil, c.Remove(ctx, "v1") },
			wantPath: "/VolumeDriver.Remove",
			wantBody: `{"Name":"v1"}`,
		},
		{
			name:     "Mount",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.Mount(ctx, "v1", "c0ffee") },
			wantPath: "/VolumeDriver.Mount",
			wantBody: `{"Name":"v1","ID":"c0ffee"}`,
			want:     "/var/lib/fake/v1",
		},
		{
			name:     "Unmount",
			call:     func(ctx context.Context, c *Client) (any, error) { return nil, c.Unmount(ctx, "v1", "c0ffee") },
			wantPath: "/VolumeDriver.Unmount",
			wantBody: `{"Name":"v1","ID":"c0ffee"}`,
		},
		{
			name:     "Path",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.Path(ctx, "v1") },
			wantPath: "/VolumeDriver.Path",
			wantBody: `{"Name":"v1"}`,
			want:     "/var/lib/fake/v1",
		},
		{
			name:     "Get",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.Get(ctx, "v1") },
			wantPath: "/VolumeDriver.Get",
			wantBody: `{"Name":"v1"}`,
			want: Volume{
				Name: "v1", Mountpoint: "/var/lib/fake/v1", CreatedAt: "2024-01-02T03:04:05Z",
				Status: map[string]any{"size": "1G"},
			},
		},
		{
			name:     "List",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.List(ctx) },
			wantPath: "/VolumeDriver.List",
			wantBody: `{}`,
			want:     []Volume{{Name: "v1", Mountpoint: "/var/lib/fake/v1"}, {Name: "v2"}},
		},
		{
			name:     "Capabilities",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.Capabilities(ctx) },
			wantPath: "/VolumeDriver.Capabilities",
			wantBody: `{}`,
			want:     "global",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newClient(t, nil)
			got, err := tt.call(t.Context(), c)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
			}
			r := reqs[0]
			wantHead := request{Method: "POST", Path: tt.wantPath, Host: pluginHost, Accept: acceptType, ContentType: contentType}
			gotHead := r
			gotHead.Body = ""
			if diff := cmp.Diff(wantHead, gotHead); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(jsonValue(t, tt.wantBody), jsonValue(t, r.Body)); diff != "" {
				t.Errorf("request body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEmptyVolumeName(t *testing.T) {
	c, f := newClient(t, nil)
	ctx := t.Context()
	calls := map[string]func() error{
		"Create":  func() error { return c.Create(ctx, "", nil) },
		"Remove":  func() error { return c.Remove(ctx, "") },
		"Mount":   func() error { _, err := c.Mount(ctx, "", "id"); return err },
		"Unmount": func() error { return c.Unmount(ctx, "", "id") },
		"Path":    func() error { _, err := c.Path(ctx, ""); return err },
		"Get":     func() error { _, err := c.Get(ctx, ""); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s(\"\") = %v, want %v", name, err, api.ErrInvalid)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestPluginError(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name         string
		answer       answer
		want         *PluginError
		wantNotFound bool
		maxMsg       int // for raw bodies: Msg is bounded, not compared
	}{
		{
			name:         "no such volume",
			answer:       answer{status: 500, body: `{"Err":"no such volume"}`},
			want:         &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Msg: "no such volume", Status: 500},
			wantNotFound: true,
		},
		{
			name:         "does not exist, any case",
			answer:       answer{status: 500, body: `{"Err":"Volume v1 Does Not Exist"}`},
			want:         &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Msg: "Volume v1 Does Not Exist", Status: 500},
			wantNotFound: true,
		},
		{
			name:         "doesn't exist",
			answer:       answer{status: 400, body: `{"Err":"volume v1 doesn't exist"}`},
			want:         &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Msg: "volume v1 doesn't exist", Status: 400},
			wantNotFound: true,
		},
		{
			name:         "Err in a 200 answer",
			answer:       answer{body: `{"Err":"volume NOT FOUND"}`},
			want:         &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Msg: "volume NOT FOUND", Status: 200},
			wantNotFound: true,
		},
		{
			name:   "busy",
			answer: answer{status: 500, body: `{"Err":"device or resource busy"}`},
			want:   &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Msg: "device or resource busy", Status: 500},
		},
		{
			name:   "raw 404 of a missing endpoint is not a missing volume",
			answer: answer{status: 404, body: "404 page not found\n"},
			want:   &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Status: 404},
			maxMsg: 300,
		},
		{
			name:   "long non-JSON body",
			answer: answer{status: 502, body: long},
			want:   &PluginError{Plugin: "fake", Method: "VolumeDriver.Mount", Status: 502},
			maxMsg: 300,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, map[string]answer{"VolumeDriver.Mount": tt.answer})
			_, err := c.Mount(t.Context(), "v1", "id")
			var perr *PluginError
			if !errors.As(err, &perr) {
				t.Fatalf("Mount() = %v, want a *PluginError", err)
			}
			opts := []cmp.Option{cmpopts.IgnoreUnexported(PluginError{})}
			if tt.maxMsg > 0 {
				opts = append(opts, cmpopts.IgnoreFields(PluginError{}, "Msg"))
				if len(perr.Msg) > tt.maxMsg || perr.Msg == "" {
					t.Errorf("Msg is %d bytes, want 1 to %d", len(perr.Msg), tt.maxMsg)
				}
			}
			if diff := cmp.Diff(tt.want, perr, opts...); diff != "" {
				t.Errorf("PluginError (-want +got):\n%s", diff)
			}
			if got := errors.Is(err, api.ErrNotFound); got != tt.wantNotFound {
				t.Errorf("errors.Is(err, api.ErrNotFound) = %v, want %v", got, tt.wantNotFound)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, sock string)
	}{
		{name: "missing socket", setup: func(*testing.T, string) {}},
		{name: "stale socket", setup: staleSocket},
		{
			name: "plugin dies during the call",
			setup: func(t *testing.T, sock string) {
				startPlugin(t, sock, map[string]answer{"VolumeDriver.Mount": {hangup: true}})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(shortDir(t), "p.sock")
			tt.setup(t, sock)
			c, err := New(Plugin{Name: "p", Addr: "unix://" + sock})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Mount(t.Context(), "v1", "id"); !errors.Is(err, api.ErrUnavailable) {
				t.Errorf("Mount() = %v, want %v", err, api.ErrUnavailable)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(t *testing.T) context.Context
		timeout time.Duration // replaces the default per-call timeouts
	}{
		{
			name: "ctx deadline",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
		},
		{
			name:    "default per-call timeout",
			ctx:     func(t *testing.T) context.Context { return t.Context() },
			timeout: 10 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, map[string]answer{"VolumeDriver.Mount": {block: true}})
			c.timeout = tt.timeout
			_, err := c.Mount(tt.ctx(t), "v1", "id")
			if !errors.Is(err, api.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Mount() = %v, want %v and %v", err, api.ErrTimeout, context.DeadlineExceeded)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	entered := make(chan struct{})
	c, _ := newClient(t, map[string]answer{"VolumeDriver.Mount": {block: true, entered: entered}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		<-entered
		cancel()
	}()
	_, err := c.Mount(ctx, "v1", "id")
	if !errors.Is(err, context.Canceled) || errors.Is(err, api.ErrTimeout) {
		t.Errorf("Mount() = %v, want %v and not %v", err, context.Canceled, api.ErrTimeout)
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		want    string
		wantErr error
	}{
		{name: "local", answer: answer{body: `{"Capabilities":{"Scope":"local"}}`}, want: "local"},
		{name: "upper case global", answer: answer{body: `{"Capabilities":{"Scope":"GLOBAL"}}`}, want: "global"},
		{name: "unknown scope", answer: answer{body: `{"Capabilities":{"Scope":"weird"}}`}, want: "local"},
		{name: "empty scope", answer: answer{body: `{"Capabilities":{}}`}, want: "local"},
		{name: "empty answer", answer: answer{body: ``}, want: "local"},
		{name: "not json", answer: answer{body: `scope=global`}, want: "local"},
		{name: "plugin error", answer: answer{status: 500, body: `{"Err":"no capabilities"}`}, want: "local"},
		{name: "endpoint missing", answer: answer{status: 404, body: "404 page not found"}, want: "local"},
		{name: "plugin down", answer: answer{hangup: true}, want: "local", wantErr: api.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, map[string]answer{"VolumeDriver.Capabilities": tt.answer})
			got, err := c.Capabilities(t.Context())
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Capabilities() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Capabilities() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGetNoVolume(t *testing.T) {
	c, _ := newClient(t, map[string]answer{"VolumeDriver.Get": {body: `{"Volume":null}`}})
	if _, err := c.Get(t.Context(), "v1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get() = %v, want %v", err, api.ErrNotFound)
	}
}

func TestListEmpty(t *testing.T) {
	c, _ := newClient(t, map[string]answer{"VolumeDriver.List": {body: `{}`}})
	got, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Volume{}, got); diff != "" {
		t.Errorf("List() (-want +got):\n%s", diff)
	}
}

func TestTCP(t *testing.T) {
	f := newFake(nil)
	addr := serveTCP(t, f)
	c, err := New(Plugin{Name: "tcp", Addr: "tcp://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []request{{Method: "POST", Path: "/Plugin.Activate", Host: addr, Accept: acceptType, ContentType: contentType}}
	if diff := cmp.Diff(want, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestConcurrent runs calls in parallel on one client, for the race detector.
func TestConcurrent(t *testing.T) {
	c, f := newClient(t, nil)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Mount(t.Context(), "v1", fmt.Sprint(i))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Mount %d: %v", i, err)
		}
	}
	if got := len(f.requests()); got != n {
		t.Errorf("%d requests, want %d", got, n)
	}
}

// TestNoRedirect checks that a redirect is an error, not followed.
func TestNoRedirect(t *testing.T) {
	sock := filepath.Join(shortDir(t), "r.sock")
	serveUnix(t, sock, http.RedirectHandler("/elsewhere", http.StatusTemporaryRedirect))
	c, err := New(Plugin{Name: "r", Addr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Remove(t.Context(), "v1")
	var perr *PluginError
	if !errors.As(err, &perr) || perr.Status != http.StatusTemporaryRedirect {
		t.Errorf("Remove() = %v, want a *PluginError with status 307", err)
	}
}

// TestAnswerBounds: what a plugin answers is bounded, per call (a mount
// point or an error is small; a Get is one volume; a List every volume),
// and so is each field used: a mount point longer than PATH_MAX is refused,
// a long error message is cut; data after the JSON is refused.
func TestAnswerBounds(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("p", n) }
	call := map[string]func(c *Client) error{
		"VolumeDriver.Mount":  func(c *Client) error { _, err := c.Mount(t.Context(), "v1", "id"); return err },
		"VolumeDriver.Path":   func(c *Client) error { _, err := c.Path(t.Context(), "v1"); return err },
		"VolumeDriver.Create": func(c *Client) error { return c.Create(t.Context(), "v1", nil) },
		"VolumeDriver.Get":    func(c *Client) error { _, err := c.Get(t.Context(), "v1"); return err },
		"VolumeDriver.List":   func(c *Client) error { _, err := c.List(t.Context()); return err },
		"Plugin.Activate":     func(c *Client) error { return c.Activate(t.Context()) },
	}
	for _, tc := range []struct {
		name, method, body string
	}{
		{"long mount answer", "VolumeDriver.Mount", `{"Mountpoint":"/x","Pad":"` + pad(maxAnswer) + `"}`},
		{"long mount point", "VolumeDriver.Mount", `{"Mountpoint":"/` + pad(maxPath) + `"}`},
		{"long path answer", "VolumeDriver.Path", `{"Mountpoint":"/` + pad(maxAnswer) + `"}`},
		{"long create answer", "VolumeDriver.Create", `{"Pad":"` + pad(maxAnswer) + `"}`},
		{"long activate answer", "Plugin.Activate", `{"Implements":["VolumeDriver","` + pad(maxAnswer) + `"]}`},
		{"long get answer", "VolumeDriver.Get", `{"Volume":{"Name":"v1","Status":{"x":"` + pad(maxGetAnswer) + `"}}}`},
		{"long mount point in get", "VolumeDriver.Get", `{"Volume":{"Name":"v1","Mountpoint":"/` + pad(maxPath) + `"}}`},
		{"long list answer", "VolumeDriver.List", `{"Volumes":[{"Name":"` + pad(maxResponse) + `"}]}`},
		{"trailing data", "VolumeDriver.Mount", `{"Mountpoint":"/x"} and more`},
		{"a second value", "VolumeDriver.Get", `{"Volume":{"Name":"v1"}}{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, map[string]answer{tc.method: {body: tc.body}})
			if err := call[tc.method](c); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("%s answering %.60q...: %v, want api.ErrInvalid", tc.method, tc.body, err)
			}
		})
	}
	for _, status := range []int{200, 500} {
		long := "volume not found " + pad(60<<10)
		c, _ := newClient(t, map[string]answer{"VolumeDriver.Mount": {status: status, body: `{"Err":"` + long + `"}`}})
		_, err := c.Mount(t.Context(), "v1", "id")
		var perr *PluginError
		if !errors.As(err, &perr) || len(perr.Msg) > maxErrMsg+32 || !strings.HasPrefix(perr.Msg, "volume not found") {
			t.Errorf("status %d, an error of %d bytes: %v", status, len(long), err)
		}
		if !errors.Is(err, api.ErrNotFound) {
			t.Errorf("status %d: the cut message no longer says not found: %v", status, err)
		}
	}
}
