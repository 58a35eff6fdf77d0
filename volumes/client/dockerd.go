package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/caisson/caisson/api"
)

// apiVersion is the Engine API version asked for: dockerd 20.10 speaks 1.41,
// and newer daemons still accept it.
const apiVersion = "/v1.41"

// errNoManaged says dockerd has no plugin of that name; Find goes on to the
// legacy plugins.
var errNoManaged = errors.New("no managed plugin of that name")

// dockerdError marks a failure to list dockerd's plugins; Find goes on to the
// legacy plugins and reports it only if none is found.
type dockerdError struct{ err error }

func (e *dockerdError) Error() string { return e.err.Error() }
func (e *dockerdError) Unwrap() error { return e.err }

// apiPlugin is the part of a plugin in GET /plugins that matters here (moby
// api/types Plugin, PluginConfig, PluginConfigInterface).
type apiPlugin struct {
	ID      string `json:"Id"`
	Name    string `json:"Name"`
	Enabled bool   `json:"Enabled"`
	Config  struct {
		Interface struct {
			Types  []interfaceType `json:"Types"`
			Socket string          `json:"Socket"`
		} `json:"Interface"`
		PropagatedMount string `json:"PropagatedMount"`
	} `json:"Config"`
}

// interfaceType is moby's PluginInterfaceType. dockerd sends it as a string,
// "docker.volumedriver/1.0" (its MarshalJSON), although the swagger file
// describes an object {"Prefix","Capability","Version"}; both are read.
type interfaceType struct {
	Prefix     string
	Capability string
	Version    string
}

func (t *interfaceType) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		// The same split as moby's: prefix up to the last "." before the
		// first "/", version after it.
		spec, version, hasVersion := strings.Cut(s, "/")
		prefix, capability := "", spec
		if i := strings.LastIndexByte(spec, '.'); i >= 0 {
			prefix, capability = spec[:i], spec[i+1:]
		}
		*t = interfaceType{Prefix: prefix, Capability: capability}
		if hasVersion {
			t.Version = version
		}
		return nil
	}
	type plain interfaceType
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = interfaceType(p)
	return nil
}

func (t interfaceType) String() string {
	return fmt.Sprintf("%s.%s/%s", t.Prefix, t.Capability, t.Version)
}

// volumeDriver reports whether p implements docker.volumedriver. Like
// dockerd (plugin/v2 FilterByCap), any version is accepted.
func (p apiPlugin) volumeDriver() bool {
	for _, t := range p.Config.Interface.Types {
		if t.Prefix == "docker" && t.Capability == "volumedriver" {
			return true
		}
	}
	return false
}

func (p apiPlugin) types() string {
	if len(p.Config.Interface.Types) == 0 {
		return "nothing"
	}
	s := make([]string, len(p.Config.Interface.Types))
	for i, t := range p.Config.Interface.Types {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// dockerAPI is a small client of dockerd's Engine API.
type dockerAPI struct {
	addr string
	http *http.Client
	base string
}

func newDockerAPI(addr string) (*dockerAPI, error) {
	hc, base, err := newHTTPClient(addr, nil, dockerHost)
	if err != nil {
		return nil, fmt.Errorf("docker host: %w", err)
	}
	return &dockerAPI{addr: addr, http: hc, base: base + apiVersion}, nil
}

// get fetches path and decodes its JSON into v.
func (a *dockerAPI) get(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	who := "dockerd at " + a.addr
	what := "GET " + apiVersion + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", who, what, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return transportError(ctx, who, what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return transportError(ctx, who, what, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("%s: %s: answer longer than %d bytes: %w", who, what, maxResponse, api.ErrInvalid)
	}
	if resp.StatusCode != http.StatusOK {
		var m struct {
			Message string `json:"message"`
		}
		msg := quoteHead(data)
		if json.Unmarshal(data, &m) == nil && m.Message != "" {
			msg = m.Message
		}
		return fmt.Errorf("%s: %s: HTTP %d: %s: %w", who, what, resp.StatusCode, msg, api.ErrUnavailable)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %s: decode %s: %v: %w", who, what, quoteHead(data), err, api.ErrInvalid)
	}
	return nil
}

func (a *dockerAPI) plugins(ctx context.Context) ([]apiPlugin, error) {
	var ps []apiPlugin
	if err := a.get(ctx, "/plugins", &ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// dataRoot returns dockerd's DockerRootDir.
func (a *dockerAPI) dataRoot(ctx context.Context) (string, error) {
	var info struct {
		DockerRootDir string `json:"DockerRootDir"`
	}
	if err := a.get(ctx, "/info", &info); err != nil {
		return "", err
	}
	if !filepath.IsAbs(info.DockerRootDir) {
		return "", fmt.Errorf("dockerd at %s: DockerRootDir %q is not an absolute path: %w", a.addr, info.DockerRootDir, api.ErrInvalid)
	}
	return info.DockerRootDir, nil
}

// findManaged asks dockerd for the plugin called name. It returns
// errNoManaged when dockerd has none, and a *dockerdError when dockerd could
// not be asked.
func (d *Discovery) findManaged(ctx context.Context, name string) (Plugin, error) {
	a, err := newDockerAPI(d.DockerHost)
	if err != nil {
		return Plugin{}, err
	}
	list, err := a.plugins(ctx)
	if err != nil {
		return Plugin{}, &dockerdError{err}
	}
	ap, ok := matchPlugin(list, name)
	if !ok {
		return Plugin{}, errNoManaged
	}
	if !ap.Enabled {
		return Plugin{}, fmt.Errorf("managed plugin %q (%.12s) is disabled (docker plugin enable %s): %w", ap.Name, ap.ID, ap.Name, api.ErrUnavailable)
	}
	if !ap.volumeDriver() {
		return Plugin{}, fmt.Errorf("managed plugin %q implements %s, not docker.volumedriver: %w", ap.Name, ap.types(), api.ErrInvalid)
	}
	sock, err := d.managedSocket(ap)
	if err != nil {
		return Plugin{}, err
	}
	root, err := a.dataRoot(ctx)
	if err != nil {
		return Plugin{}, fmt.Errorf("managed plugin %q: %w", ap.Name, err)
	}
	return managedPlugin(ap, sock, root), nil
}

// listManaged returns dockerd's enabled volume plugins that have a socket.
func (d *Discovery) listManaged(ctx context.Context) ([]Plugin, error) {
	a, err := newDockerAPI(d.DockerHost)
	if err != nil {
		return nil, err
	}
	list, err := a.plugins(ctx)
	if err != nil {
		return nil, err
	}
	log := d.logger()
	var out []Plugin
	root := ""
	for _, ap := range list {
		if !ap.Enabled || !ap.volumeDriver() {
			continue
		}
		sock, err := d.managedSocket(ap)
		if err != nil {
			log.Debug("skipping managed plugin", "plugin", ap.Name, "error", err)
			continue
		}
		if root == "" {
			if root, err = a.dataRoot(ctx); err != nil {
				return out, err
			}
		}
		out = append(out, managedPlugin(ap, sock, root))
	}
	return out, nil
}

func managedPlugin(ap apiPlugin, sock, dataRoot string) Plugin {
	return Plugin{
		Name:            ap.Name,
		Addr:            "unix://" + sock,
		Managed:         true,
		ID:              ap.ID,
		PropagatedMount: ap.Config.PropagatedMount,
		DataRoot:        dataRoot,
	}
}

// managedSocket returns the first <exec root>/<ID>/<socket> that is a socket.
func (d *Discovery) managedSocket(ap apiPlugin) (string, error) {
	if !validID(ap.ID) {
		return "", fmt.Errorf("managed plugin %q: ID %q is not one path element: %w", ap.Name, ap.ID, api.ErrInvalid)
	}
	s := ap.Config.Interface.Socket
	if s == "" || !filepath.IsLocal(s) {
		return "", fmt.Errorf("managed plugin %q: socket %q is not a relative path inside its directory: %w", ap.Name, s, api.ErrInvalid)
	}
	var tried []string
	for _, root := range d.execRoots() {
		p := filepath.Join(root, ap.ID, s)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("managed plugin %q: no socket at %s: %w", ap.Name, strings.Join(tried, ", "), api.ErrUnavailable)
}

// matchPlugin finds name among dockerd's plugins: a full ID, or a name
// that is the same reference once normalised ("vendor/plug" is
// "vendor/plug:latest", "docker.io/library/x" is "x:latest"), as dockerd
// resolves it. dockerd also accepts a unique ID prefix; that is not done here.
func matchPlugin(list []apiPlugin, name string) (apiPlugin, bool) {
	for _, p := range list {
		if p.ID != "" && p.ID == name {
			return p, true
		}
	}
	want, ok := normalizeRef(name)
	if !ok {
		return apiPlugin{}, false
	}
	for _, p := range list {
		if n, ok := normalizeRef(p.Name); ok && n == want {
			return p, true
		}
	}
	return apiPlugin{}, false
}

// normalizeRef returns a plugin reference in dockerd's familiar form with a
// tag: "vendor/plug" → "vendor/plug:latest", "docker.io/library/x" →
// "x:latest". Digest references are not resolvable (as in dockerd).
func normalizeRef(s string) (string, bool) {
	if s == "" || strings.ContainsAny(s, "@ \x00") {
		return "", false
	}
	if first, rest, ok := strings.Cut(s, "/"); ok {
		switch {
		case first == "docker.io" || first == "index.docker.io":
			s = rest
		case strings.ContainsAny(first, ".:") || first == "localhost":
			// another registry: kept as is.
			return withTag(s), true
		}
	}
	if rest, ok := strings.CutPrefix(s, "library/"); ok && !strings.Contains(rest, "/") {
		s = rest
	}
	if s == "" {
		return "", false
	}
	return withTag(s), true
}

func withTag(s string) string {
	last := s[strings.LastIndexByte(s, '/')+1:]
	if !strings.Contains(last, ":") {
		return s + ":latest"
	}
	return s
}
