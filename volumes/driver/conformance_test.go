package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/pkg/plugingetter"
	"github.com/docker/docker/pkg/plugins"
	dvolume "github.com/docker/docker/volume"
	"github.com/docker/docker/volume/drivers"
	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// dockerPlugin is the smallest plugingetter.CompatPlugin: a v1 plugin whose
// client talks to our socket, the way dockerd sees a legacy plugin.
type dockerPlugin struct {
	name   string
	client *plugins.Client
}

func (p *dockerPlugin) Name() string                      { return p.name }
func (p *dockerPlugin) ScopedPath(s string) string        { return s }
func (p *dockerPlugin) IsV1() bool                        { return true }
func (p *dockerPlugin) Client() *plugins.Client           { return p.client }
func (p *dockerPlugin) getter() plugingetter.PluginGetter { return getter{p} }

type getter struct{ p *dockerPlugin }

func (g getter) Get(name, _ string, _ int) (plugingetter.CompatPlugin, error) {
	if name != g.p.name {
		return nil, plugins.ErrNotFound
	}
	return g.p, nil
}
func (g getter) GetAllByCap(string) ([]plugingetter.CompatPlugin, error) {
	return []plugingetter.CompatPlugin{g.p}, nil
}
func (g getter) GetAllManagedPluginsByCap(string) []plugingetter.CompatPlugin { return nil }
func (g getter) Handle(string, func(string, *plugins.Client))                 {}

// serveDriver runs a driver on a temporary socket until the test ends.
func serveDriver(t *testing.T, root string) (*Driver, string) {
	t.Helper()
	testutil.RequiresLinux(t) // the plugin serves on Linux only
	d, err := New(Config{Root: root, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return d, serveOn(t, d)
}

// serveOn serves d on a temporary socket until the test ends, and checks
// that shutting down removes the socket.
func serveOn(t testing.TB, d *Driver) string {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "cvp")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "p.sock")
	l, err := Listen(sock, os.Getegid())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, d, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left after shutdown: %v", err)
		}
		_ = os.RemoveAll(sockDir)
	})
	return sock
}

// TestDockerClientConformance drives the driver with dockerd's own client
// code (pkg/plugins and volume/drivers) over a real socket.
func TestDockerClientConformance(t *testing.T) {
	root := t.TempDir()
	_, sock := serveDriver(t, root)
	client, err := plugins.NewClientWithTimeout("unix://"+sock, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	store := drivers.NewStore((&dockerPlugin{name: "caisson", client: client}).getter())
	drv, err := store.GetDriver("caisson")
	if err != nil {
		t.Fatal(err)
	}
	if got := drv.Scope(); got != "local" {
		t.Errorf("Scope() = %q, want local", got)
	}
	v, err := drv.Create("data", map[string]string{"type": "dir", "keep": "false"})
	if err != nil {
		t.Fatal(err)
	}
	// Docker calls Create again for a volume it already knows: same
	// options, or none, succeed.
	if _, err := drv.Create("data", nil); err != nil {
		t.Errorf("repeated Create without options: %v", err)
	}
	if _, err := drv.Create("data", map[string]string{"type": "tmpfs"}); err == nil || !strings.Contains(err.Error(), "already exists with other options") {
		t.Errorf("Create with other options = %v", err)
	}
	got, err := drv.Get("data")
	if err != nil {
		t.Fatal(err)
	}
	created, err := got.CreatedAt()
	if err != nil || created.IsZero() {
		t.Errorf("CreatedAt = %v, %v: must be RFC3339", created, err)
	}
	if diff := cmp.Diff(map[string]any{"type": "dir", "refs": float64(0)}, got.(interface{ Status() map[string]any }).Status()); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
	p1, err := v.Mount("id1")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "volumes", "data", "data"); p1 != want {
		t.Errorf("Mount = %q, want %q", p1, want)
	}
	if err := os.WriteFile(filepath.Join(p1, "f"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Mount("id2"); err != nil {
		t.Fatal(err)
	}
	if refs := getStatus(t, drv, "data")["refs"]; refs != float64(2) {
		t.Errorf("refs after two mounts = %v, want 2", refs)
	}
	for _, id := range []string{"id1", "id2", "never-mounted"} {
		if err := v.Unmount(id); err != nil {
			t.Errorf("Unmount(%s): %v", id, err)
		}
	}
	list, err := drv.List()
	if err != nil || len(list) != 1 || list[0].Name() != "data" {
		t.Errorf("List = %v, %v", list, err)
	}
	if err := drv.Remove(v); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "data")); !os.IsNotExist(err) {
		t.Errorf("data left after Remove: %v", err)
	}
	if _, err := drv.Get("data"); err == nil {
		t.Error("Get after Remove succeeded")
	}
	// Errors reach Docker's users as "VolumeDriver.Create: <our message>".
	_, err = drv.Create("bad", map[string]string{"size": "lots"})
	if err == nil || !strings.Contains(err.Error(), "VolumeDriver.Create: invalid option size=\"lots\"") {
		t.Errorf("bad size: %v", err)
	}
}

func getStatus(t *testing.T, drv dvolume.Driver, name string) map[string]any {
	t.Helper()
	v, err := drv.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return v.(interface{ Status() map[string]any }).Status()
}

// TestListen: the socket is 0660 and owned by the group asked for; a stale
// socket (a plugin that died) is replaced, a live one or a plain file is not.
func TestListen(t *testing.T) {
	testutil.RequiresLinux(t)
	dir, err := os.MkdirTemp("", "cvl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "p.sock")
	l, err := Listen(sock, os.Getegid())
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || int(st.Gid) != os.Getegid() {
		t.Errorf("socket mode %o gid %d, want 660 and %d", st.Mode&0o777, st.Gid, os.Getegid())
	}
	if _, err := Listen(sock, os.Getegid()); !errors.Is(err, api.ErrAlreadyExists) {
		t.Errorf("Listen on a live socket = %v, want api.ErrAlreadyExists", err)
	}
	// A crash leaves the socket file behind with nobody listening.
	_ = l.UnixListener.Close() // not l.Close, which removes the socket
	l, err = Listen(sock, os.Getegid())
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	_ = l.Close()
	plain := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(plain, os.Getegid()); !errors.Is(err, api.ErrAlreadyExists) {
		t.Errorf("Listen over a regular file = %v, want api.ErrAlreadyExists", err)
	}
}
