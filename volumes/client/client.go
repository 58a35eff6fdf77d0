package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/caisson/caisson/api"
)

// Default per-call timeouts, the same as dockerd's (moby
// volume/drivers/proxy.go). They apply when ctx has no earlier deadline.
const (
	CreateTimeout  = 2 * time.Minute
	MountTimeout   = 2 * time.Minute
	DefaultTimeout = time.Minute
)

const (
	// acceptType is what moby's pkg/plugins/transport sends as Accept.
	acceptType = "application/vnd.docker.plugins.v1.2+json"
	// contentType describes the JSON body. moby itself sends no
	// Content-Type; no plugin we know of looks at it.
	contentType = "application/vnd.docker.plugins.v1+json"
	// pluginHost is the Host header on unix sockets (moby's dummyHost).
	pluginHost = "plugin.moby.localhost"
	// dockerHost is the Host header for dockerd's API on a unix socket.
	dockerHost = "api.moby.localhost"

	// maxResponse bounds what is read from dockerd, and a plugin's answer
	// to List (every volume it has, with their Status).
	maxResponse = 32 << 20
	// maxGetAnswer bounds a plugin's answer to Get (one volume and its
	// Status); maxAnswer its answer to any other call, a mount point or an
	// error at most.
	maxGetAnswer = 1 << 20
	maxAnswer    = 64 << 10
	// maxErrBody is how much of a non-JSON error body ends up in an error.
	maxErrBody = 200
	// maxErrMsg is how much of a plugin's own error message ends up in an
	// error.
	maxErrMsg = 4096
	// maxPath bounds a mount point a plugin reports (PATH_MAX).
	maxPath = 4096
)

// answerLimit is the most a plugin's answer to method may be.
func answerLimit(method string) int {
	switch method {
	case "VolumeDriver.List":
		return maxResponse
	case "VolumeDriver.Get":
		return maxGetAnswer
	}
	return maxAnswer
}

// Volume is what a plugin reports about one volume.
type Volume struct {
	Name       string         `json:"Name"`
	Mountpoint string         `json:"Mountpoint"`
	CreatedAt  string         `json:"CreatedAt"`
	Status     map[string]any `json:"Status"`
}

// TLSConfig is the TLS part of a legacy plugin's .json spec file, as dockerd
// reads it (go-connections tlsconfig.Options).
type TLSConfig struct {
	InsecureSkipVerify bool
	CAFile             string
	CertFile           string
	KeyFile            string
}

// Plugin is a located plugin endpoint.
type Plugin struct {
	// Name is the name users give (--mount driver=NAME): "myvol", or
	// "vendor/plug:tag" for managed plugins (as dockerd reports it).
	Name string
	// Addr is "unix:///abs/path.sock", "tcp://host:port", "http://host:port"
	// or "https://host:port". As in dockerd, TLS is used only with https.
	Addr string
	// TLS comes from a .json spec file; nil otherwise.
	TLS *TLSConfig

	// Managed plugins (docker plugin install/create) run in their own mount
	// namespace, and dockerd rewrites their Mountpoints: PropagatedMount
	// "/mnt/volumes" and a Mountpoint "/mnt/volumes/x" is, on the host,
	// <DataRoot>/plugins/<ID>/propagated-mount/x (moby plugin/v2 ScopedPath).
	Managed         bool
	ID              string
	PropagatedMount string
	DataRoot        string
}

// Client calls one plugin. It is safe for concurrent use.
type Client struct {
	plugin Plugin
	http   *http.Client
	base   string // scheme://host the requests go to

	// timeout, when set, replaces the default per-call timeouts (tests).
	timeout time.Duration
}

// New returns a client for p. It validates p.Addr (unix, tcp, http or https)
// and reads the TLS files of an https plugin; it does not contact the plugin.
func New(p Plugin) (*Client, error) {
	hc, base, err := newHTTPClient(p.Addr, p.TLS, pluginHost)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", p.Name, err)
	}
	if p.TLS != nil {
		t := *p.TLS
		p.TLS = &t
	}
	return &Client{plugin: p, http: hc, base: base}, nil
}

// Plugin returns what the client calls.
func (c *Client) Plugin() Plugin {
	p := c.plugin
	if p.TLS != nil {
		t := *p.TLS
		p.TLS = &t
	}
	return p
}

// parseAddr checks a plugin or dockerd address and returns its scheme and
// the socket path (unix) or host:port.
func parseAddr(addr string) (scheme, target string, err error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %v: %w", addr, err, api.ErrInvalid)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || u.Opaque != "" || !path.IsAbs(u.Path) {
			return "", "", fmt.Errorf("address %q: a unix socket must be an absolute path (unix:///path.sock): %w", addr, api.ErrInvalid)
		}
		if strings.IndexByte(u.Path, 0) >= 0 {
			return "", "", fmt.Errorf("address %q: NUL byte in socket path: %w", addr, api.ErrInvalid)
		}
		return u.Scheme, u.Path, nil
	case "tcp", "http", "https":
		if u.Host == "" {
			return "", "", fmt.Errorf("address %q: no host: %w", addr, api.ErrInvalid)
		}
		return u.Scheme, u.Host, nil
	case "":
		return "", "", fmt.Errorf("address %q: no scheme (unix://, tcp://, http:// or https://): %w", addr, api.ErrInvalid)
	default:
		return "", "", fmt.Errorf("address %q: unsupported scheme %q: %w", addr, u.Scheme, api.ErrInvalid)
	}
}

// newHTTPClient builds an http.Client for addr. Requests go to the returned
// base URL; on a unix socket its host is unixHost.
func newHTTPClient(addr string, tc *TLSConfig, unixHost string) (*http.Client, string, error) {
	scheme, target, err := parseAddr(addr)
	if err != nil {
		return nil, "", err
	}
	tr := &http.Transport{
		// Plugins restart; a kept-alive connection to the old process would
		// fail the next POST, which net/http does not replay.
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	var base string
	switch scheme {
	case "unix":
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", target)
		}
		base = "http://" + unixHost
	case "tcp", "http":
		base = "http://" + target
	case "https":
		cfg, err := tc.config()
		if err != nil {
			return nil, "", err
		}
		tr.TLSClientConfig = cfg
		base = "https://" + target
	}
	hc := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return hc, base, nil
}

// config builds the tls.Config; a nil TLSConfig verifies against the system
// roots.
func (tc *TLSConfig) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tc == nil {
		return cfg, nil
	}
	cfg.InsecureSkipVerify = tc.InsecureSkipVerify
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca file %s: no PEM certificate: %w", tc.CAFile, api.ErrInvalid)
		}
		cfg.RootCAs = pool
	}
	if tc.CertFile != "" || tc.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls key pair %s, %s: %v: %w", tc.CertFile, tc.KeyFile, err, api.ErrInvalid)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// errField is the "Err" every plugin answer may carry.
type errField struct {
	Err string `json:"Err"`
}

func (e errField) pluginErr() string { return e.Err }

type pluginAnswer interface{ pluginErr() string }

type nameRequest struct {
	Name string `json:"Name"`
}

type createRequest struct {
	Name string            `json:"Name"`
	Opts map[string]string `json:"Opts"`
}

type mountRequest struct {
	Name string `json:"Name"`
	ID   string `json:"ID"`
}

type emptyRequest struct{}

type emptyAnswer struct{ errField }

type activateAnswer struct {
	errField
	Implements []string `json:"Implements"`
}

type mountpointAnswer struct {
	errField
	Mountpoint string `json:"Mountpoint"`
}

type getAnswer struct {
	errField
	Volume *Volume `json:"Volume"`
}

type listAnswer struct {
	errField
	Volumes []Volume `json:"Volumes"`
}

type capabilitiesAnswer struct {
	errField
	Capabilities struct {
		Scope string `json:"Scope"`
	} `json:"Capabilities"`
}

// Activate does the handshake (POST /Plugin.Activate) and checks that the
// plugin implements VolumeDriver; otherwise the error wraps api.ErrInvalid and
// names what it implements. A caller may retry it while a plugin starts.
func (c *Client) Activate(ctx context.Context) error {
	implements, err := c.implements(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(implements, "VolumeDriver") {
		what := "nothing"
		if len(implements) > 0 {
			what = strings.Join(implements, ", ")
		}
		return fmt.Errorf("plugin %q implements %s, not VolumeDriver: %w", c.plugin.Name, what, api.ErrInvalid)
	}
	return nil
}

// implements calls Plugin.Activate and returns what the plugin implements.
func (c *Client) implements(ctx context.Context) ([]string, error) {
	var ans activateAnswer
	// moby sends Plugin.Activate with an empty body.
	if err := c.call(ctx, "Plugin.Activate", DefaultTimeout, nil, &ans); err != nil {
		return nil, err
	}
	return ans.Implements, nil
}

// Create asks the plugin to create a volume. nil opts are sent as {}.
func (c *Client) Create(ctx context.Context, name string, opts map[string]string) error {
	const method = "VolumeDriver.Create"
	if err := c.checkName(method, name); err != nil {
		return err
	}
	if opts == nil {
		opts = map[string]string{}
	}
	return c.call(ctx, method, CreateTimeout, createRequest{Name: name, Opts: opts}, &emptyAnswer{})
}

// Remove asks the plugin to delete a volume.
func (c *Client) Remove(ctx context.Context, name string) error {
	const method = "VolumeDriver.Remove"
	if err := c.checkName(method, name); err != nil {
		return err
	}
	return c.call(ctx, method, DefaultTimeout, nameRequest{Name: name}, &emptyAnswer{})
}

// Mount asks the plugin to mount a volume for the mount ID id, and returns
// its path on the host (for a managed plugin, the rewritten path). An empty,
// relative or, for a managed plugin, out-of-scope Mountpoint is an error
// wrapping api.ErrInvalid.
func (c *Client) Mount(ctx context.Context, name, id string) (string, error) {
	const method = "VolumeDriver.Mount"
	if err := c.checkName(method, name); err != nil {
		return "", err
	}
	var ans mountpointAnswer
	if err := c.call(ctx, method, MountTimeout, mountRequest{Name: name, ID: id}, &ans); err != nil {
		return "", err
	}
	p, err := c.plugin.HostPath(ans.Mountpoint)
	if err != nil {
		return "", fmt.Errorf("plugin %q: %s %s: %w", c.plugin.Name, method, name, err)
	}
	return p, nil
}

// Unmount tells the plugin that mount ID id no longer uses the volume.
func (c *Client) Unmount(ctx context.Context, name, id string) error {
	const method = "VolumeDriver.Unmount"
	if err := c.checkName(method, name); err != nil {
		return err
	}
	return c.call(ctx, method, DefaultTimeout, mountRequest{Name: name, ID: id}, &emptyAnswer{})
}

// Path returns the host path of a volume, rewritten like Mount's. A plugin
// that reports no path (usually: the volume is not mounted) gives an error
// wrapping api.ErrNotFound.
func (c *Client) Path(ctx context.Context, name string) (string, error) {
	const method = "VolumeDriver.Path"
	if err := c.checkName(method, name); err != nil {
		return "", err
	}
	var ans mountpointAnswer
	if err := c.call(ctx, method, DefaultTimeout, nameRequest{Name: name}, &ans); err != nil {
		return "", err
	}
	if ans.Mountpoint == "" {
		return "", fmt.Errorf("plugin %q: %s %s: no mountpoint: %w", c.plugin.Name, method, name, api.ErrNotFound)
	}
	p, err := c.plugin.HostPath(ans.Mountpoint)
	if err != nil {
		return "", fmt.Errorf("plugin %q: %s %s: %w", c.plugin.Name, method, name, err)
	}
	return p, nil
}

// Get returns what the plugin reports about a volume, with its Mountpoint
// rewritten to the host path (an empty one stays empty). An answer without a
// volume is an error wrapping api.ErrNotFound.
func (c *Client) Get(ctx context.Context, name string) (Volume, error) {
	const method = "VolumeDriver.Get"
	if err := c.checkName(method, name); err != nil {
		return Volume{}, err
	}
	var ans getAnswer
	if err := c.call(ctx, method, DefaultTimeout, nameRequest{Name: name}, &ans); err != nil {
		return Volume{}, err
	}
	if ans.Volume == nil {
		return Volume{}, fmt.Errorf("plugin %q: %s %s: no volume in the answer: %w", c.plugin.Name, method, name, api.ErrNotFound)
	}
	v := *ans.Volume
	if err := c.rewrite(method, &v); err != nil {
		return Volume{}, err
	}
	return v, nil
}

// List returns every volume the plugin knows, Mountpoints rewritten as Get's.
func (c *Client) List(ctx context.Context) ([]Volume, error) {
	const method = "VolumeDriver.List"
	var ans listAnswer
	if err := c.call(ctx, method, DefaultTimeout, emptyRequest{}, &ans); err != nil {
		return nil, err
	}
	vols := ans.Volumes
	if vols == nil {
		vols = []Volume{}
	}
	for i := range vols {
		if err := c.rewrite(method, &vols[i]); err != nil {
			return nil, err
		}
	}
	return vols, nil
}

// Capabilities returns the plugin's scope, "local" or "global". As in
// dockerd, a plugin that answers with an error, nothing, or an unknown scope
// is "local". The error is only for a plugin that could not be asked
// (api.ErrUnavailable, api.ErrTimeout, a cancelled ctx); scope is "local" then.
func (c *Client) Capabilities(ctx context.Context) (scope string, err error) {
	const method = "VolumeDriver.Capabilities"
	var ans capabilitiesAnswer
	if err := c.call(ctx, method, DefaultTimeout, emptyRequest{}, &ans); err != nil {
		var perr *PluginError
		if errors.As(err, &perr) || errors.Is(err, api.ErrInvalid) {
			return "local", nil
		}
		return "local", err
	}
	switch s := strings.ToLower(ans.Capabilities.Scope); s {
	case "local", "global":
		return s, nil
	default:
		return "local", nil
	}
}

func (c *Client) checkName(method, name string) error {
	if name == "" {
		return fmt.Errorf("plugin %q: %s: empty volume name: %w", c.plugin.Name, method, api.ErrInvalid)
	}
	return nil
}

// rewrite replaces a reported Mountpoint with its host path.
func (c *Client) rewrite(method string, v *Volume) error {
	if v.Mountpoint == "" {
		return nil
	}
	p, err := c.plugin.HostPath(v.Mountpoint)
	if err != nil {
		return fmt.Errorf("plugin %q: %s: volume %q: %w", c.plugin.Name, method, v.Name, err)
	}
	v.Mountpoint = p
	return nil
}

// call POSTs args (nil: an empty body) to /method and decodes the answer into
// ret. It tries once.
func (c *Client) call(ctx context.Context, method string, timeout time.Duration, args any, ret pluginAnswer) error {
	if c.timeout > 0 {
		timeout = c.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	body := io.Reader(http.NoBody)
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("plugin %q: %s: encode request: %w", c.plugin.Name, method, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, body)
	if err != nil {
		return fmt.Errorf("plugin %q: %s: %w", c.plugin.Name, method, err)
	}
	req.Header.Set("Accept", acceptType)
	req.Header.Set("Content-Type", contentType)

	who := fmt.Sprintf("plugin %q at %s", c.plugin.Name, c.plugin.Addr)
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, who, method, err)
	}
	defer resp.Body.Close()
	limit := answerLimit(method)
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return transportError(ctx, who, method, err)
	}
	if len(data) > limit {
		return fmt.Errorf("%s: %s: answer longer than %d bytes: %w", who, method, limit, api.ErrInvalid)
	}
	if resp.StatusCode != http.StatusOK {
		return c.statusError(method, resp.StatusCode, data)
	}
	// moby fails on an empty body; an empty answer is taken as {} here.
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, ret); err != nil {
		return fmt.Errorf("%s: %s: decode answer %s: %v: %w", who, method, quoteHead(data), err, api.ErrInvalid)
	}
	if msg := ret.pluginErr(); msg != "" {
		return &PluginError{Plugin: c.plugin.Name, Method: method, Msg: clip(msg), Status: resp.StatusCode, fromPlugin: true}
	}
	return nil
}

// clip bounds a plugin's error message to maxErrMsg bytes (cut at a rune).
func clip(msg string) string {
	if len(msg) <= maxErrMsg {
		return msg
	}
	cut := maxErrMsg
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", msg[:cut], len(msg))
}

// statusError turns a non-200 answer into a *PluginError: the plugin's Err
// when the body has one, otherwise the status and the start of the body.
func (c *Client) statusError(method string, status int, data []byte) error {
	var e errField
	if json.Unmarshal(data, &e) == nil && e.Err != "" {
		return &PluginError{Plugin: c.plugin.Name, Method: method, Msg: clip(e.Err), Status: status, fromPlugin: true}
	}
	return &PluginError{
		Plugin: c.plugin.Name,
		Method: method,
		Msg:    fmt.Sprintf("HTTP %d %s: %s", status, http.StatusText(status), quoteHead(data)),
		Status: status,
	}
}

// quoteHead quotes the first maxErrBody bytes of b, without surrounding
// space, so that a plugin's output cannot forge log lines.
func quoteHead(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > maxErrBody {
		return fmt.Sprintf("%q...", b[:maxErrBody])
	}
	return fmt.Sprintf("%q", b)
}

// transportError wraps an error from the HTTP exchange itself: a deadline
// becomes api.ErrTimeout, a plugin that is not there api.ErrUnavailable.
func transportError(ctx context.Context, who, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %s: %w: %w", who, what, ctxErr, api.ErrTimeout)
		}
		return fmt.Errorf("%s: %s: %w", who, what, ctxErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %s: %v: %w", who, what, err, api.ErrUnavailable)
	}
	return fmt.Errorf("%s: %s: %w", who, what, err)
}

// unavailable reports whether err means nobody (or nobody alive) answers: a
// missing socket, a stale socket, a connection cut by a crash.
func unavailable(err error) bool {
	var oerr *net.OpError
	if errors.As(err, &oerr) && oerr.Op == "dial" {
		return true
	}
	for _, target := range []error{
		syscall.ECONNREFUSED, syscall.ENOENT, syscall.ECONNRESET, syscall.EPIPE,
		io.EOF, io.ErrUnexpectedEOF,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
