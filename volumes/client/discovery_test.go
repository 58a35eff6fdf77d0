package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
)

// legacyEnv is a set of plugin directories in a temporary directory.
type legacyEnv struct {
	root    string
	sockDir string
	spec1   string
	spec2   string
}

func newLegacyEnv(t *testing.T) *legacyEnv {
	t.Helper()
	root := shortDir(t)
	e := &legacyEnv{root: root, sockDir: filepath.Join(root, "s"), spec1: filepath.Join(root, "e"), spec2: filepath.Join(root, "u")}
	for _, d := range []string{e.sockDir, e.spec1, e.spec2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *legacyEnv) discovery() *Discovery {
	return &Discovery{SocketDirs: []string{e.sockDir}, SpecDirs: []string{e.spec1, e.spec2}}
}

// target starts a fake plugin on a socket outside the plugin directories, for
// spec files to point at, and returns its address.
func (e *legacyEnv) target(t *testing.T, name string, answers map[string]answer) string {
	t.Helper()
	sock := filepath.Join(e.root, "t", name+".sock")
	startPlugin(t, sock, answers)
	return "unix://" + sock
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindLegacyOrder(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *legacyEnv) Plugin // returns the plugin Find must return
	}{
		{
			name: "NAME.sock beats NAME/NAME.sock, .spec and .json",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				sock := filepath.Join(e.sockDir, "p.sock")
				startPlugin(t, sock, nil)
				startPlugin(t, filepath.Join(e.sockDir, "p", "p.sock"), nil)
				writeFile(t, filepath.Join(e.spec1, "p.spec"), e.target(t, "a", nil))
				writeFile(t, filepath.Join(e.spec1, "p.json"), fmt.Sprintf(`{"Addr":%q}`, e.target(t, "b", nil)))
				return Plugin{Name: "p", Addr: "unix://" + sock}
			},
		},
		{
			name: "NAME/NAME.sock beats .spec and .json",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				sock := filepath.Join(e.sockDir, "p", "p.sock")
				startPlugin(t, sock, nil)
				writeFile(t, filepath.Join(e.spec1, "p.spec"), e.target(t, "a", nil))
				writeFile(t, filepath.Join(e.spec1, "p.json"), fmt.Sprintf(`{"Addr":%q}`, e.target(t, "b", nil)))
				return Plugin{Name: "p", Addr: "unix://" + sock}
			},
		},
		{
			name: ".spec beats .json",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				a := e.target(t, "a", nil)
				writeFile(t, filepath.Join(e.spec1, "p.spec"), a+"\n")
				writeFile(t, filepath.Join(e.spec1, "p.json"), fmt.Sprintf(`{"Addr":%q}`, e.target(t, "b", nil)))
				return Plugin{Name: "p", Addr: a}
			},
		},
		{
			name: "NAME/NAME.spec",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				a := e.target(t, "a", nil)
				writeFile(t, filepath.Join(e.spec1, "p", "p.spec"), "  "+a+"  \n")
				return Plugin{Name: "p", Addr: a}
			},
		},
		{
			name: ".json with Addr and TLSConfig",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				b := e.target(t, "b", nil)
				writeFile(t, filepath.Join(e.spec1, "p.json"), fmt.Sprintf(`{"Name":"ignored","Addr":%q,"TLSConfig":{"CertFile":"/c.pem","KeyFile":"/k.pem"}}`, b))
				// dockerd skips verification when there is no CAFile.
				return Plugin{Name: "p", Addr: b, TLS: &TLSConfig{InsecureSkipVerify: true, CertFile: "/c.pem", KeyFile: "/k.pem"}}
			},
		},
		{
			name: ".json with a CA",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				b := e.target(t, "b", nil)
				writeFile(t, filepath.Join(e.spec1, "p", "p.json"), fmt.Sprintf(`{"Addr":%q,"TLSConfig":{"CAFile":"/ca.pem"}}`, b))
				return Plugin{Name: "p", Addr: b, TLS: &TLSConfig{CAFile: "/ca.pem"}}
			},
		},
		{
			name: ".spec in the second directory",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				a := e.target(t, "a", nil)
				writeFile(t, filepath.Join(e.spec2, "p.spec"), a)
				return Plugin{Name: "p", Addr: a}
			},
		},
		{
			name: ".json in the first directory beats .spec in the second (dockerd's order)",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				b := e.target(t, "b", nil)
				writeFile(t, filepath.Join(e.spec1, "p.json"), fmt.Sprintf(`{"Addr":%q}`, b))
				writeFile(t, filepath.Join(e.spec2, "p.spec"), e.target(t, "a", nil))
				return Plugin{Name: "p", Addr: b}
			},
		},
		{
			name: "a regular file named NAME.sock is passed over",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				writeFile(t, filepath.Join(e.sockDir, "p.sock"), "")
				a := e.target(t, "a", nil)
				writeFile(t, filepath.Join(e.spec1, "p.spec"), a)
				return Plugin{Name: "p", Addr: a}
			},
		},
		{
			name: "tcp spec",
			setup: func(t *testing.T, e *legacyEnv) Plugin {
				addr := "tcp://" + serveTCP(t, newFake(nil))
				writeFile(t, filepath.Join(e.spec1, "p.spec"), addr)
				return Plugin{Name: "p", Addr: addr}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLegacyEnv(t)
			want := tt.setup(t, e)
			c, err := e.discovery().Find(t.Context(), "p")
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if diff := cmp.Diff(want, c.Plugin()); diff != "" {
				t.Errorf("Find (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindLegacyErrors(t *testing.T) {
	tests := []struct {
		name    string
		find    string
		setup   func(t *testing.T, e *legacyEnv)
		wantErr error
	}{
		{name: "not found", find: "p", wantErr: api.ErrNotFound},
		{name: "empty name", find: "", wantErr: api.ErrInvalid},
		{name: "NUL in name", find: "p\x00", wantErr: api.ErrInvalid},
		{
			name: "a name with a slash is not a legacy plugin",
			find: "x/x",
			setup: func(t *testing.T, e *legacyEnv) {
				startPlugin(t, filepath.Join(e.sockDir, "x", "x.sock"), nil)
			},
			wantErr: api.ErrNotFound,
		},
		{
			name: "dot dot",
			find: "..",
			setup: func(t *testing.T, e *legacyEnv) {
				// <sockDir>/../...sock would be the root's "...sock".
				startPlugin(t, filepath.Join(e.root, "...sock"), nil)
			},
			wantErr: api.ErrNotFound,
		},
		{
			name: "spec without a scheme",
			find: "p",
			setup: func(t *testing.T, e *legacyEnv) {
				writeFile(t, filepath.Join(e.spec1, "p.spec"), "/run/p.sock")
			},
			wantErr: api.ErrInvalid,
		},
		{
			name: "json that is not JSON",
			find: "p",
			setup: func(t *testing.T, e *legacyEnv) {
				writeFile(t, filepath.Join(e.spec1, "p.json"), "unix:///run/p.sock")
			},
			wantErr: api.ErrInvalid,
		},
		{
			name: "not a volume driver",
			find: "p",
			setup: func(t *testing.T, e *legacyEnv) {
				startPlugin(t, filepath.Join(e.sockDir, "p.sock"), map[string]answer{
					"Plugin.Activate": {body: `{"Implements":["NetworkDriver"]}`},
				})
			},
			wantErr: api.ErrInvalid,
		},
		{
			name: "stale socket: no fallback to spec files, as in dockerd",
			find: "p",
			setup: func(t *testing.T, e *legacyEnv) {
				staleSocket(t, filepath.Join(e.sockDir, "p.sock"))
				writeFile(t, filepath.Join(e.spec1, "p.spec"), e.target(t, "a", nil))
			},
			wantErr: api.ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLegacyEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			_, err := e.discovery().Find(t.Context(), tt.find)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Find(%q) = %v, want %v", tt.find, err, tt.wantErr)
			}
		})
	}
}

func TestDiscoveryDefaults(t *testing.T) {
	var d Discovery
	got := [][]string{d.socketDirs(), d.specDirs(), d.execRoots()}
	want := [][]string{{"/run/docker/plugins"}, {"/etc/docker/plugins", "/usr/lib/docker/plugins"}, {"/run/docker/plugins"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	none := Discovery{SocketDirs: []string{}, SpecDirs: []string{}}
	if _, err := none.Find(t.Context(), "p"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Find with no directories = %v, want %v", err, api.ErrNotFound)
	}
}

// managedEnv is a fake dockerd with managed plugins, and legacy directories.
type managedEnv struct {
	*legacyEnv
	dockerd   *fakeDockerd
	host      string
	execRoot1 string
	execRoot2 string
	plugins   map[string]*fakePlugin // by ID
}

const dataRoot = "/var/lib/docker-test"

func pluginID(c byte) string { return strings.Repeat(string(c), 64) }

// newManagedEnv starts a fake dockerd that reports:
//
//	a vendor/vol:latest     enabled volume driver, socket in exec root 1
//	b vendor/off:latest     disabled volume driver
//	c vendor/net:latest     enabled network driver
//	d vendor/tagged:v2      enabled volume driver, types as objects, socket in exec root 2, no Plugin.Activate
//	e vendor/nosock:latest  enabled volume driver without a socket
//	f shadow:latest         enabled volume driver, also a legacy socket "shadow"
func newManagedEnv(t *testing.T) *managedEnv {
	t.Helper()
	e := &managedEnv{legacyEnv: newLegacyEnv(t), plugins: map[string]*fakePlugin{}}
	e.execRoot1 = filepath.Join(e.root, "x1")
	e.execRoot2 = filepath.Join(e.root, "x2")
	vol := `{"Interface":{"Types":["docker.volumedriver/1.0"],"Socket":%q},"PropagatedMount":"/mnt/volumes"}`
	plugins := fmt.Sprintf(`[
		{"Id":%q,"Name":"vendor/vol:latest","Enabled":true,"Config":`+vol+`},
		{"Id":%q,"Name":"vendor/off:latest","Enabled":false,"Config":`+vol+`},
		{"Id":%q,"Name":"vendor/net:latest","Enabled":true,"Config":{"Interface":{"Types":["docker.networkdriver/1.0"],"Socket":"net.sock"}}},
		{"Id":%q,"Name":"vendor/tagged:v2","Enabled":true,"Config":{"Interface":{"Types":[{"Prefix":"docker","Capability":"volumedriver","Version":"1.0"}],"Socket":"t.sock"},"PropagatedMount":"/data"}},
		{"Id":%q,"Name":"vendor/nosock:latest","Enabled":true,"Config":`+vol+`},
		{"Id":%q,"Name":"shadow:latest","Enabled":true,"Config":`+vol+`}
	]`,
		pluginID('a'), "plugin.sock",
		pluginID('b'), "plugin.sock",
		pluginID('c'),
		pluginID('d'),
		pluginID('e'), "gone.sock",
		pluginID('f'), "s.sock",
	)
	e.dockerd = &fakeDockerd{plugins: plugins, info: `{"ID":"x","DockerRootDir":"` + dataRoot + `","Driver":"overlay2"}`}
	sock := filepath.Join(e.root, "docker.sock")
	serveUnix(t, sock, e.dockerd)
	e.host = "unix://" + sock

	mountAt := map[string]answer{"VolumeDriver.Mount": {body: `{"Mountpoint":"/mnt/volumes/v1"}`}}
	e.plugins[pluginID('a')] = startPlugin(t, filepath.Join(e.execRoot1, pluginID('a'), "plugin.sock"), mountAt)
	e.plugins[pluginID('b')] = startPlugin(t, filepath.Join(e.execRoot1, pluginID('b'), "plugin.sock"), mountAt)
	e.plugins[pluginID('c')] = startPlugin(t, filepath.Join(e.execRoot1, pluginID('c'), "net.sock"), nil)
	e.plugins[pluginID('d')] = startPlugin(t, filepath.Join(e.execRoot2, pluginID('d'), "t.sock"), map[string]answer{
		"Plugin.Activate":    {status: 404, body: "404 page not found\n"},
		"VolumeDriver.Mount": {body: `{"Mountpoint":"/data/x"}`},
	})
	e.plugins[pluginID('f')] = startPlugin(t, filepath.Join(e.execRoot1, pluginID('f'), "s.sock"), mountAt)
	// d's directory exists in exec root 1 too, without its socket.
	if err := os.MkdirAll(filepath.Join(e.execRoot1, pluginID('d')), 0o755); err != nil {
		t.Fatal(err)
	}
	startPlugin(t, filepath.Join(e.sockDir, "shadow.sock"), nil)
	startPlugin(t, filepath.Join(e.sockDir, "legacy.sock"), nil)
	return e
}

func (e *managedEnv) discovery() *Discovery {
	d := e.legacyEnv.discovery()
	d.DockerHost = e.host
	d.PluginExecRoots = []string{e.execRoot1, e.execRoot2}
	return d
}

func managedPluginFor(id, name, root, sock, pm string) Plugin {
	return Plugin{
		Name:            name,
		Addr:            "unix://" + filepath.Join(root, id, sock),
		Managed:         true,
		ID:              id,
		PropagatedMount: pm,
		DataRoot:        dataRoot,
	}
}

func TestFindManaged(t *testing.T) {
	e := newManagedEnv(t)
	vol := managedPluginFor(pluginID('a'), "vendor/vol:latest", e.execRoot1, "plugin.sock", "/mnt/volumes")
	tagged := managedPluginFor(pluginID('d'), "vendor/tagged:v2", e.execRoot2, "t.sock", "/data")
	shadow := managedPluginFor(pluginID('f'), "shadow:latest", e.execRoot1, "s.sock", "/mnt/volumes")
	tests := []struct {
		find      string
		want      Plugin
		wantMount string
	}{
		{find: "vendor/vol", want: vol, wantMount: dataRoot + "/plugins/" + pluginID('a') + "/propagated-mount/v1"},
		{find: "vendor/vol:latest", want: vol},
		{find: "docker.io/vendor/vol", want: vol},
		{find: pluginID('a'), want: vol},
		{find: "vendor/tagged:v2", want: tagged, wantMount: dataRoot + "/plugins/" + pluginID('d') + "/propagated-mount/x"},
		{find: "shadow", want: shadow},
		{find: "docker.io/library/shadow:latest", want: shadow},
		{find: "legacy", want: Plugin{Name: "legacy", Addr: "unix://" + filepath.Join(e.sockDir, "legacy.sock")}},
	}
	for _, tt := range tests {
		t.Run(tt.find, func(t *testing.T) {
			c, err := e.discovery().Find(t.Context(), tt.find)
			if err != nil {
				t.Fatalf("Find(%q): %v", tt.find, err)
			}
			if diff := cmp.Diff(tt.want, c.Plugin()); diff != "" {
				t.Errorf("Find(%q) (-want +got):\n%s", tt.find, diff)
			}
			if tt.wantMount == "" {
				return
			}
			got, err := c.Mount(t.Context(), "v1", "id")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.wantMount {
				t.Errorf("Mount() = %q, want %q", got, tt.wantMount)
			}
		})
	}
	want := []string{"GET /v1.41/plugins", "GET /v1.41/info"}
	if got := e.dockerd.requests(); len(got) < 2 || cmp.Diff(want, got[:2]) != "" {
		t.Errorf("dockerd requests = %q, want them to start with %q", got, want)
	}
}

func TestFindManagedErrors(t *testing.T) {
	e := newManagedEnv(t)
	tests := []struct {
		find    string
		wantErr error
	}{
		{find: "vendor/off", wantErr: api.ErrUnavailable},
		{find: "vendor/net", wantErr: api.ErrInvalid},
		{find: "vendor/nosock", wantErr: api.ErrUnavailable},
		{find: "vendor/tagged", wantErr: api.ErrNotFound},
		{find: "vendor/vol:v2", wantErr: api.ErrNotFound},
		{find: "vendor/vol@sha256:" + pluginID('0'), wantErr: api.ErrNotFound},
		{find: "nothing", wantErr: api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.find, func(t *testing.T) {
			_, err := e.discovery().Find(t.Context(), tt.find)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Find(%q) = %v, want %v", tt.find, err, tt.wantErr)
			}
		})
	}
}

// TestFindDockerdDown: legacy plugins are still found; a name found nowhere
// is "unavailable", not "not found", since dockerd could not be asked.
func TestFindDockerdDown(t *testing.T) {
	tests := []struct {
		name    string
		host    func(t *testing.T, e *legacyEnv) string
		find    string
		wantErr error
	}{
		{name: "no socket, legacy plugin", host: noDockerd, find: "p"},
		{name: "no socket, nothing", host: noDockerd, find: "nothing", wantErr: api.ErrUnavailable},
		{name: "error status, legacy plugin", host: brokenDockerd, find: "p"},
		{name: "error status, nothing", host: brokenDockerd, find: "nothing", wantErr: api.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLegacyEnv(t)
			startPlugin(t, filepath.Join(e.sockDir, "p.sock"), nil)
			d := e.discovery()
			d.DockerHost = tt.host(t, e)
			_, err := d.Find(t.Context(), tt.find)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Find(%q) = %v, want %v", tt.find, err, tt.wantErr)
			}
			if errors.Is(err, api.ErrNotFound) {
				t.Errorf("Find(%q) = %v, which should not wrap %v", tt.find, err, api.ErrNotFound)
			}
		})
	}
}

func noDockerd(_ *testing.T, e *legacyEnv) string {
	return "unix://" + filepath.Join(e.root, "no-docker.sock")
}

func brokenDockerd(t *testing.T, e *legacyEnv) string {
	sock := filepath.Join(e.root, "docker.sock")
	serveUnix(t, sock, &fakeDockerd{status: 500})
	return "unix://" + sock
}

func TestList(t *testing.T) {
	e := newManagedEnv(t)
	// Besides shadow.sock and legacy.sock (volume drivers):
	startPlugin(t, filepath.Join(e.sockDir, "nd", "nd.sock"), nil)
	startPlugin(t, filepath.Join(e.sockDir, "ln.sock"), map[string]answer{
		"Plugin.Activate": {body: `{"Implements":["NetworkDriver"]}`},
	})
	staleSocket(t, filepath.Join(e.sockDir, "stale.sock"))
	writeFile(t, filepath.Join(e.sockDir, "notes.txt"), "not a plugin")
	spec := e.target(t, "ls", nil)
	writeFile(t, filepath.Join(e.spec1, "ls.spec"), spec)
	writeFile(t, filepath.Join(e.spec2, "ls.json"), `{"Addr":"unix:///nowhere.sock"}`) // shadowed by ls.spec
	writeFile(t, filepath.Join(e.spec2, "bad.spec"), "no scheme")

	got, err := e.discovery().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Plugin{
		{Name: "legacy", Addr: "unix://" + filepath.Join(e.sockDir, "legacy.sock")},
		{Name: "nd", Addr: "unix://" + filepath.Join(e.sockDir, "nd", "nd.sock")},
		{Name: "shadow", Addr: "unix://" + filepath.Join(e.sockDir, "shadow.sock")},
		{Name: "ls", Addr: spec},
		managedPluginFor(pluginID('a'), "vendor/vol:latest", e.execRoot1, "plugin.sock", "/mnt/volumes"),
		managedPluginFor(pluginID('d'), "vendor/tagged:v2", e.execRoot2, "t.sock", "/data"),
		managedPluginFor(pluginID('f'), "shadow:latest", e.execRoot1, "s.sock", "/mnt/volumes"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestListDockerdDown(t *testing.T) {
	e := newLegacyEnv(t)
	startPlugin(t, filepath.Join(e.sockDir, "p.sock"), nil)
	d := e.discovery()
	d.DockerHost = noDockerd(t, e)
	got, err := d.List(t.Context())
	if !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("List() error = %v, want %v", err, api.ErrUnavailable)
	}
	want := []Plugin{{Name: "p", Addr: "unix://" + filepath.Join(e.sockDir, "p.sock")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestNormalizeRef(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"vendor/plug", "vendor/plug:latest", true},
		{"vendor/plug:v1", "vendor/plug:v1", true},
		{"plug", "plug:latest", true},
		{"library/plug", "plug:latest", true},
		{"docker.io/library/plug:v1", "plug:v1", true},
		{"index.docker.io/vendor/plug", "vendor/plug:latest", true},
		{"localhost:5000/plug", "localhost:5000/plug:latest", true},
		{"registry.example/a/b:c", "registry.example/a/b:c", true},
		{"vendor/plug@sha256:abc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeRef(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeRef(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestInterfaceType(t *testing.T) {
	var got []interfaceType
	in := `["docker.volumedriver/1.0", {"Prefix":"docker","Capability":"networkdriver","Version":"1.0"}, "docker.authz"]`
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := []interfaceType{
		{Prefix: "docker", Capability: "volumedriver", Version: "1.0"},
		{Prefix: "docker", Capability: "networkdriver", Version: "1.0"},
		{Prefix: "docker", Capability: "authz"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("interface types (-want +got):\n%s", diff)
	}
}

// FuzzParseSpec checks that a spec file that parses gives an address New
// accepts.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"unix:///run/docker/plugins/p.sock\n",
		"tcp://127.0.0.1:8080",
		"https://h:1",
		"/run/p.sock",
		`{"Name":"p","Addr":"unix:///x.sock"}`,
		`{"Addr":"https://h:1","TLSConfig":{"CAFile":"/ca.pem"}}`,
		`{"Addr":"tcp://h:1","TLSConfig":{}}`,
		"unix://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if p, err := parseSpec("p", []byte(data)); err == nil {
			if _, err := New(p); err != nil {
				t.Fatalf("parseSpec(%q) = %+v, which New refuses: %v", data, p, err)
			}
		} else if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("parseSpec(%q) error %v does not wrap %v", data, err, api.ErrInvalid)
		}
		p, err := parseJSONSpec("p", []byte(data))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("parseJSONSpec(%q) error %v does not wrap %v", data, err, api.ErrInvalid)
			}
			return
		}
		if p.Name != "p" {
			t.Fatalf("parseJSONSpec(%q) name = %q, want the file's name", data, p.Name)
		}
		if p.TLS != nil && !strings.HasPrefix(p.Addr, "https:") {
			// No TLS files are read for a plugin that does not use TLS.
			if _, err := New(p); err != nil {
				t.Fatalf("parseJSONSpec(%q) = %+v, which New refuses: %v", data, p, err)
			}
		}
		if p.TLS == nil {
			if _, err := New(p); err != nil {
				t.Fatalf("parseJSONSpec(%q) = %+v, which New refuses: %v", data, p, err)
			}
		}
	})
}
