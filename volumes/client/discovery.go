package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/caisson/caisson/api"
)

// Where dockerd looks by default (moby pkg/plugins, daemon/daemon_linux.go).
var (
	defaultSocketDirs      = []string{"/run/docker/plugins"}
	defaultSpecDirs        = []string{"/etc/docker/plugins", "/usr/lib/docker/plugins"}
	defaultPluginExecRoots = []string{"/run/docker/plugins"}
)

// maxSpecFile bounds the size of a .spec or .json file.
const maxSpecFile = 1 << 20

// Discovery locates plugins by name, in dockerd's order: managed plugins
// first (when DockerHost is set), then legacy sockets, then spec files. A nil
// slice means dockerd's default; an empty one means none.
type Discovery struct {
	// SocketDirs hold legacy plugins' sockets: NAME.sock, then
	// NAME/NAME.sock. Default ["/run/docker/plugins"].
	SocketDirs []string
	// SpecDirs hold legacy plugins' spec files, tried in order, each for
	// NAME.spec, NAME/NAME.spec, NAME.json, NAME/NAME.json. A .spec holds a
	// URL (unix:// or tcp://); a .json {"Name","Addr","TLSConfig":{...}}.
	// Default ["/etc/docker/plugins", "/usr/lib/docker/plugins"].
	SpecDirs []string
	// DockerHost is dockerd's API ("unix:///var/run/docker.sock"), asked
	// for managed plugins. Empty: dockerd is not asked.
	DockerHost string
	// PluginExecRoots are where dockerd puts managed plugins' sockets:
	// <root>/<ID>/<Config.Interface.Socket>, the first that exists wins.
	// Default ["/run/docker/plugins"], which dockerd hardcodes on Linux.
	PluginExecRoots []string
	// Logger receives what List skips, at debug level. nil: discarded.
	Logger *slog.Logger
}

func (d *Discovery) socketDirs() []string {
	if d.SocketDirs == nil {
		return defaultSocketDirs
	}
	return d.SocketDirs
}

func (d *Discovery) specDirs() []string {
	if d.SpecDirs == nil {
		return defaultSpecDirs
	}
	return d.SpecDirs
}

func (d *Discovery) execRoots() []string {
	if d.PluginExecRoots == nil {
		return defaultPluginExecRoots
	}
	return d.PluginExecRoots
}

func (d *Discovery) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// Find locates the volume plugin called name and activates it.
//
// Managed plugins are asked of dockerd first: "vendor/plug" means
// "vendor/plug:latest", a full ID matches too. A disabled one is an error
// wrapping api.ErrUnavailable, one that is no volume driver api.ErrInvalid;
// neither falls back to legacy plugins, as in dockerd. Legacy plugins are
// looked for only under names that can be one file name (no "/", "..", NUL).
// A name found nowhere gives an error wrapping api.ErrNotFound that says
// where Find looked; if dockerd could not be asked, the error wraps dockerd's
// (api.ErrUnavailable or api.ErrTimeout) instead.
func (d *Discovery) Find(ctx context.Context, name string) (*Client, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("plugin name %q: %w", name, api.ErrInvalid)
	}
	var dockerErr error
	if d.DockerHost != "" {
		p, err := d.findManaged(ctx, name)
		var derr *dockerdError
		switch {
		case err == nil:
			c, err := New(p)
			if err != nil {
				return nil, err
			}
			if err := activateManaged(ctx, c); err != nil {
				return nil, err
			}
			return c, nil
		case errors.Is(err, errNoManaged):
		case errors.As(err, &derr):
			dockerErr = derr.err
		default:
			return nil, err
		}
	}

	if legacyName(name) {
		p, ok, err := d.findLegacy(name)
		if err != nil {
			return nil, err
		}
		if ok {
			c, err := New(p)
			if err != nil {
				return nil, err
			}
			if err := c.Activate(ctx); err != nil {
				return nil, err
			}
			return c, nil
		}
	}

	where := d.places(name)
	if dockerErr != nil {
		return nil, fmt.Errorf("plugin %q not found (looked in %s), and %w", name, where, dockerErr)
	}
	return nil, fmt.Errorf("plugin %q not found (looked in %s): %w", name, where, api.ErrNotFound)
}

// places says where Find looks for name.
func (d *Discovery) places(name string) string {
	var where []string
	if d.DockerHost != "" {
		where = append(where, "dockerd at "+d.DockerHost)
	}
	if legacyName(name) {
		where = append(where, d.socketDirs()...)
		where = append(where, d.specDirs()...)
	} else {
		where = append(where, "no legacy plugin directory: the name is not a file name")
	}
	if len(where) == 0 {
		return "nowhere: no directory and no dockerd configured"
	}
	return strings.Join(where, ", ")
}

// activateManaged does the handshake with a managed plugin. dockerd itself
// never sends Plugin.Activate to one, so a plugin without that endpoint (a
// raw 404) is accepted: dockerd already said it is a volume driver.
func activateManaged(ctx context.Context, c *Client) error {
	err := c.Activate(ctx)
	var perr *PluginError
	if errors.As(err, &perr) && perr.Status == 404 && !perr.fromPlugin {
		return nil
	}
	return err
}

// List returns every volume plugin found: legacy plugins (from the socket
// and spec directories) that say they implement VolumeDriver, then enabled
// managed plugins implementing docker.volumedriver whose socket exists.
// Entries that cannot be read or do not answer are skipped (logged at debug).
// When dockerd cannot be asked, List returns the legacy plugins together with
// the error.
func (d *Discovery) List(ctx context.Context) ([]Plugin, error) {
	log := d.logger()
	found := []Plugin{}
	for _, name := range d.legacyNames() {
		p, ok, err := d.findLegacy(name)
		if err != nil || !ok {
			log.Debug("skipping legacy plugin", "plugin", name, "error", err)
			continue
		}
		c, err := New(p)
		if err != nil {
			log.Debug("skipping legacy plugin", "plugin", name, "error", err)
			continue
		}
		if err := c.Activate(ctx); err != nil {
			if ctx.Err() != nil {
				return found, fmt.Errorf("list plugins: %w", ctx.Err())
			}
			log.Debug("skipping legacy plugin", "plugin", name, "error", err)
			continue
		}
		found = append(found, c.Plugin())
	}
	if d.DockerHost == "" {
		return found, nil
	}
	managed, err := d.listManaged(ctx)
	found = append(found, managed...)
	if err != nil {
		return found, fmt.Errorf("list managed plugins: %w", err)
	}
	return found, nil
}

// legacyName reports whether name can be a legacy plugin, that is one file
// name: dockerd joins it to directories unchecked.
func legacyName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 250 &&
		!strings.ContainsAny(name, "/\x00")
}

// findLegacy looks for a legacy plugin in dockerd's order (moby
// pkg/plugins LocalRegistry.Plugin). A socket path that exists but is not a
// socket is passed over, as dockerd does; the first spec file that exists is
// used, and an unreadable or invalid one is an error.
func (d *Discovery) findLegacy(name string) (Plugin, bool, error) {
	for _, dir := range d.socketDirs() {
		for _, p := range candidates(dir, name, ".sock") {
			if fi, err := os.Stat(p); err == nil && fi.Mode()&fs.ModeSocket != 0 {
				return Plugin{Name: name, Addr: "unix://" + p}, true, nil
			}
		}
	}
	for _, dir := range d.specDirs() {
		paths := append(candidates(dir, name, ".spec"), candidates(dir, name, ".json")...)
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil || fi.IsDir() {
				continue
			}
			data, err := readSpec(p)
			if err != nil {
				return Plugin{}, false, fmt.Errorf("plugin %q: %w", name, err)
			}
			var pl Plugin
			if strings.HasSuffix(p, ".json") {
				pl, err = parseJSONSpec(name, data)
			} else {
				pl, err = parseSpec(name, data)
			}
			if err != nil {
				return Plugin{}, false, fmt.Errorf("plugin %q: spec file %s: %w", name, p, err)
			}
			return pl, true, nil
		}
	}
	return Plugin{}, false, nil
}

func candidates(dir, name, ext string) []string {
	return []string{
		filepath.Join(dir, name+ext),
		filepath.Join(dir, name, name+ext),
	}
}

func readSpec(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSpecFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxSpecFile {
		return nil, fmt.Errorf("spec file %s is larger than %d bytes: %w", path, maxSpecFile, api.ErrInvalid)
	}
	return data, nil
}

// parseSpec reads a .spec file: one URL, surrounding space ignored.
func parseSpec(name string, data []byte) (Plugin, error) {
	addr := strings.TrimSpace(string(data))
	if _, _, err := parseAddr(addr); err != nil {
		return Plugin{}, err
	}
	return Plugin{Name: name, Addr: addr}, nil
}

// jsonSpec is a .json spec file (moby pkg/plugins Plugin). The Name in the
// file is ignored: the file name is the plugin's name.
type jsonSpec struct {
	Name      string
	Addr      string
	TLSConfig *TLSConfig
}

// parseJSONSpec reads a .json spec file. As in dockerd, a TLSConfig without a
// CAFile skips verification of the plugin's certificate.
func parseJSONSpec(name string, data []byte) (Plugin, error) {
	var s jsonSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return Plugin{}, fmt.Errorf("decode: %v: %w", err, api.ErrInvalid)
	}
	if _, _, err := parseAddr(s.Addr); err != nil {
		return Plugin{}, err
	}
	if s.TLSConfig != nil && s.TLSConfig.CAFile == "" {
		s.TLSConfig.InsecureSkipVerify = true
	}
	return Plugin{Name: name, Addr: s.Addr, TLS: s.TLSConfig}, nil
}

// legacyNames lists the names of legacy plugins in the directories, in
// lookup order and without duplicates (moby LocalRegistry.Scan).
func (d *Discovery) legacyNames() []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if legacyName(n) && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, dir := range d.socketDirs() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				fi, err := os.Stat(filepath.Join(dir, e.Name(), e.Name()+".sock"))
				if err == nil && fi.Mode()&fs.ModeSocket != 0 {
					add(e.Name())
				}
				continue
			}
			if n, ok := strings.CutSuffix(e.Name(), ".sock"); ok && e.Type()&fs.ModeSocket != 0 {
				add(n)
			}
		}
	}
	for _, dir := range d.specDirs() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() {
				for _, ext := range []string{".spec", ".json"} {
					if _, err := os.Stat(filepath.Join(dir, n, n+ext)); err == nil {
						add(n)
					}
				}
				continue
			}
			for _, ext := range []string{".spec", ".json"} {
				if base, ok := strings.CutSuffix(n, ext); ok {
					add(base)
				}
			}
		}
	}
	return names
}
