package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/internal/iptables"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// Name is the isolator's name in checkpoints.
const Name = "network/cni"

// Defaults.
const (
	DefaultConfDir     = "/etc/cni/net.d"
	DefaultNetworkName = "caisson"
	DefaultSubnet      = "10.199.0.0/16"
	DefaultBridge      = "caisson0"
	DefaultTimeout     = time.Minute
)

// DefaultPluginDirs is where plugin binaries are looked for: the CNI
// project's usual place, then Debian's.
var DefaultPluginDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// Config wires the isolator.
type Config struct {
	// ConfDir holds the network configuration lists (re-read at every
	// launch, so changes need no restart).
	ConfDir string
	// PluginDirs are searched, in order, for plugin binaries.
	PluginDirs []string
	// StateDir (under the work dir; survives reboots) holds each
	// container's checkpoint and files, the libcni cache and the default
	// network's host-local leases.
	StateDir string
	// RunDir (under the runtime dir) holds the pinned network namespaces.
	RunDir string
	// DefaultNetwork is written to ConfDir, as a bridge network on
	// DefaultSubnet with bridge DefaultBridge, the first time a container
	// asks for it and no file defines it.
	DefaultNetwork, DefaultSubnet, DefaultBridge string
	// Timeout bounds each operation on one network (every plugin of its
	// chain); a plugin that hangs is killed.
	Timeout time.Duration
	// HostResolvConf is the host's resolver configuration, copied to
	// containers whose networks name no DNS server.
	HostResolvConf string
	Logger         *slog.Logger
	// CrashPoint, when set, is called with a step name inside Prepare
	// ("cni:bridge" right after caisson made a network's bridge,
	// "cni:netns", "cni:added"); crash tests kill the process there.
	CrashPoint func(step string)
}

// Isolator attaches containers to CNI networks.
type Isolator struct {
	cfg     Config
	log     *slog.Logger
	cni     *libcni.CNIConfig
	unshare string
	ip      string
}

var (
	_ isolators.Preparer       = (*Isolator)(nil)
	_ isolators.Cleaner        = (*Isolator)(nil)
	_ isolators.Recoverer      = (*Isolator)(nil)
	_ isolators.StatusReporter = (*Isolator)(nil)
	_ isolators.UsageReporter  = (*Isolator)(nil)
)

// New checks cfg and fills the defaults.
func New(cfg Config) (*Isolator, error) {
	if cfg.StateDir == "" || cfg.RunDir == "" {
		return nil, fmt.Errorf("cni: state and run dirs must be set: %w", api.ErrInvalid)
	}
	if cfg.ConfDir == "" {
		cfg.ConfDir = DefaultConfDir
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = DefaultPluginDirs
	}
	if cfg.DefaultNetwork == "" {
		cfg.DefaultNetwork = DefaultNetworkName
	}
	if cfg.DefaultSubnet == "" {
		cfg.DefaultSubnet = DefaultSubnet
	}
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = DefaultBridge
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HostResolvConf == "" {
		cfg.HostResolvConf = "/etc/resolv.conf"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	iso := &Isolator{
		cfg: cfg, log: cfg.Logger,
		cni: libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.StateDir, "cache"), newPluginExec()),
	}
	iso.unshare, _ = exec.LookPath("unshare")
	iso.ip, _ = exec.LookPath("ip")
	return iso, nil
}

// Name implements isolators.Isolator.
func (iso *Isolator) Name() string { return Name }

func (iso *Isolator) crash(step string) {
	if iso.cfg.CrashPoint != nil {
		iso.cfg.CrashPoint(step)
	}
}

// attachment is one network of a container, as checkpointed before its ADD.
type attachment struct {
	Network string `json:"network"`
	IfName  string `json:"ifname"`
	// Config is the whole configuration list used for ADD; DEL uses it
	// again whatever happened to the file since.
	Config         json.RawMessage `json:"config"`
	CapabilityArgs map[string]any  `json:"capability_args,omitempty"`
	// Result is the ADD result (current spec version): while the chain
	// runs, the result of its plugins so far (recorded before each next
	// plugin runs), so a DEL after a crash knows the addresses.
	Result json.RawMessage `json:"result,omitempty"`
}

// state is a container's checkpoint.
type state struct {
	ID          string            `json:"id"`
	NetNS       string            `json:"netns"`
	Hostname    string            `json:"hostname"`
	Ports       []api.PortMapping `json:"ports,omitempty"`
	Attachments []attachment      `json:"attachments"`
}

func (iso *Isolator) containersDir() string { return filepath.Join(iso.cfg.StateDir, "containers") }

func (iso *Isolator) containerDir(id string) string { return filepath.Join(iso.containersDir(), id) }

func (iso *Isolator) netnsPath(id string) string { return filepath.Join(iso.cfg.RunDir, "netns", id) }

func (iso *Isolator) saveState(st *state) error {
	if err := os.MkdirAll(iso.containerDir(st.ID), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(iso.containerDir(st.ID), "state.json"), data, 0o600, true)
}

// loadState returns a container's checkpoint; fs.ErrNotExist when it has
// none.
func (iso *Isolator) loadState(id string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(iso.containerDir(id), "state.json"))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("cni checkpoint of container %s: %w", id, err)
	}
	return &st, nil
}

// states reads every container's checkpoint.
func (iso *Isolator) states() ([]*state, error) {
	entries, err := os.ReadDir(iso.containersDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*state
	for _, e := range entries {
		if st, err := iso.loadState(e.Name()); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// lock serialises what spans containers: port checks, creating and removing
// networks.
func (iso *Isolator) lock() (*flock.Lock, error) {
	if err := os.MkdirAll(iso.cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	return flock.Acquire(filepath.Join(iso.cfg.StateDir, "lock"), true)
}

// lookup finds a network, writing the default one on first use.
func (iso *Isolator) lookup(name string) (*Network, error) {
	n, err := iso.Network(name)
	if err == nil || name != iso.cfg.DefaultNetwork || !errors.Is(err, api.ErrNotFound) {
		return n, err
	}
	_, err = iso.Create(CreateOptions{Name: name, Subnet: iso.cfg.DefaultSubnet, Bridge: iso.cfg.DefaultBridge})
	if err != nil && !errors.Is(err, api.ErrAlreadyExists) {
		return nil, fmt.Errorf("default network %q: %w", name, err)
	}
	return iso.Network(name)
}

// checkPlugins makes sure every plugin binary of a network (and each IPAM
// plugin it delegates to) is there, before anything is done.
func (iso *Isolator) checkPlugins(n *Network) error {
	for _, p := range n.list.Plugins {
		for _, t := range []string{p.Network.Type, p.Network.IPAM.Type} {
			if t == "" {
				continue
			}
			if _, err := invoke.FindInPath(t, iso.cfg.PluginDirs); err != nil {
				return fmt.Errorf("network %q: plugin %q not found in %s: %w", n.Name, t, strings.Join(iso.cfg.PluginDirs, ":"), api.ErrInvalid)
			}
		}
	}
	return nil
}

// Prepare attaches the container to its CNI networks (see the package
// documentation) and makes the runtime join the pinned namespace.
func (iso *Isolator) Prepare(ctx context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) (retErr error) {
	names := req.Spec.CNINetworks()
	if len(names) == 0 {
		return nil
	}
	id := req.ContainerID
	nets := make([]*Network, len(names))
	for i, name := range names {
		n, err := iso.lookup(name)
		if err != nil {
			return err
		}
		if err := iso.checkPlugins(n); err != nil {
			return err
		}
		if n.Bridge != "" {
			if err := iso.ensureBridge(n); err != nil {
				return err
			}
		}
		nets[i] = n
	}
	hostname := req.Hostname
	if hostname == "" {
		hostname = id[:min(12, len(id))]
	}
	st := &state{ID: id, NetNS: iso.netnsPath(id), Hostname: hostname, Ports: req.Spec.Ports}
	caps, err := capabilityArgs(nets, req.Spec)
	if err != nil {
		return err
	}
	for i, n := range nets {
		st.Attachments = append(st.Attachments, attachment{
			Network: n.Name, IfName: fmt.Sprintf("eth%d", i), Config: n.Config, CapabilityArgs: caps[i],
		})
	}

	// The checkpoint exists before anything is attached, so whatever
	// happens next, Cleanup (or recovery) knows what to DEL.
	if err := iso.reserve(st); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			if err := iso.Cleanup(context.WithoutCancel(ctx), &isolators.CleanupRequest{ContainerID: id}); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("undo: %w", err))
			}
		}
	}()
	start := time.Now()
	if err := iso.pin(ctx, st.NetNS); err != nil {
		return err
	}
	iso.log.Debug("cni netns", "container", id, "took", time.Since(start))
	iso.crash("cni:netns")

	for i := range st.Attachments {
		a := &st.Attachments[i]
		actx := withRecorder(ctx, func(prev []byte) error { return iso.recordResult(st, a, prev) })
		res, err := iso.add(actx, st, a, nets[i])
		if err != nil {
			return err
		}
		iso.crash("cni:added")
		if a.Result, err = json.Marshal(res); err != nil {
			return err
		}
	}
	if err := iso.saveState(st); err != nil {
		return err
	}
	files, err := iso.writeFiles(st, nets)
	if err != nil {
		return err
	}
	resp.Namespaces = append(resp.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: st.NetNS})
	for _, f := range files {
		resp.Mounts = append(resp.Mounts, specs.Mount{
			Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"bind", "nosuid", "nodev", "noexec"},
		})
	}
	return nil
}

// reserve checks the published ports against other containers and the host
// and writes the first checkpoint, under the cross-container lock.
func (iso *Isolator) reserve(st *state) error {
	if len(st.Ports) == 0 {
		return iso.saveState(st)
	}
	l, err := iso.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	if err := iso.checkPorts(st.ID, st.Ports); err != nil {
		return err
	}
	return iso.saveState(st)
}

// add runs STATUS (spec 1.1.0) and ADD for one attachment.
func (iso *Isolator) add(ctx context.Context, st *state, a *attachment, n *Network) (*types100.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, iso.cfg.Timeout)
	defer cancel()
	if err := iso.cni.GetStatusNetworkList(ctx, n.list); err != nil {
		if verr := iso.checkVersions(ctx, n); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("network %q is not ready: %w", n.Name, err)
	}
	rt := &libcni.RuntimeConf{ContainerID: st.ID, NetNS: st.NetNS, IfName: a.IfName, CapabilityArgs: a.CapabilityArgs}
	// No GC or Remove of the network, in any work dir, between its look
	// at the leases and its act while this ADD makes one.
	leases, err := lockLeases(n, false)
	if err != nil {
		return nil, err
	}
	defer leases.unlock()
	start := time.Now()
	res, err := iso.cni.AddNetworkList(ctx, n.list, rt)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %s: %w)", err, iso.cfg.Timeout, api.ErrTimeout)
		}
		return nil, fmt.Errorf("network %q: %w", n.Name, err)
	}
	iso.log.Debug("cni add", "container", st.ID, "network", n.Name, "ifname", a.IfName, "took", time.Since(start))
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("network %q: result: %w", n.Name, err)
	}
	return r, nil
}

// recordResult checkpoints the result of an attachment's plugins so far,
// unless the checkpoint has it already.
func (iso *Isolator) recordResult(st *state, a *attachment, prev []byte) error {
	cur, err := currentResult(prev)
	if err != nil {
		return fmt.Errorf("network %q: result so far: %w", a.Network, err)
	}
	if bytes.Equal(cur, a.Result) {
		return nil
	}
	a.Result = cur
	return iso.saveState(st)
}

// checkVersions tells which plugin of a network does not speak its
// cniVersion (plugins older than the spec answer STATUS with puzzling
// errors).
func (iso *Isolator) checkVersions(ctx context.Context, n *Network) error {
	for _, t := range n.Plugins {
		info, err := iso.cni.GetVersionInfo(ctx, t)
		if err != nil {
			continue
		}
		if !slices.Contains(info.SupportedVersions(), n.CNIVersion) {
			return fmt.Errorf("network %q: plugin %q: incompatible CNI versions: the network is at cniVersion %s, the plugin supports %s: %w",
				n.Name, t, n.CNIVersion, strings.Join(info.SupportedVersions(), ", "), api.ErrInvalid)
		}
	}
	return nil
}

// runtimeConf is what DEL and CHECK of an attachment pass: the namespace
// while it exists (empty after a reboot), and the capability arguments of
// the ADD, read back from the libcni cache.
func (iso *Isolator) runtimeConf(st *state, a *attachment, n *Network) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: st.ID, IfName: a.IfName, CapabilityArgs: a.CapabilityArgs}
	if isNetns(st.NetNS) {
		rt.NetNS = st.NetNS
	}
	if _, cached, err := iso.cni.GetNetworkListCachedConfig(n.list, rt); err == nil && cached != nil {
		rt.CapabilityArgs = cached.CapabilityArgs
		rt.Args = cached.Args
	}
	return rt
}

// del DELs one attachment with its kept configuration. A plugin that
// rejects the configuration's spec version rejected the ADD the same way and
// holds nothing: that DEL error is logged, not returned, so it cannot block
// the cleanup forever.
func (iso *Isolator) del(ctx context.Context, st *state, a *attachment) error {
	n, err := networkFromBytes(a.Config)
	if err != nil {
		return fmt.Errorf("network %q: kept configuration: %w", a.Network, err)
	}
	ctx, cancel := context.WithTimeout(ctx, iso.undoTimeout())
	defer cancel()
	rt := iso.runtimeConf(st, a, n)
	if prev := iso.keptResult(n, rt, a); prev != nil {
		ctx = withPrevResult(ctx, prev)
	}
	start := time.Now()
	err = iso.cni.DelNetworkList(ctx, n.list, rt)
	iso.log.Debug("cni del", "container", st.ID, "network", a.Network, "ifname", a.IfName, "took", time.Since(start), "err", err)
	var cniErr *types.Error
	if errors.As(err, &cniErr) && cniErr.Code == types.ErrIncompatibleCNIVersion {
		iso.log.Warn("cni del: the plugin does not speak the network's version, so it attached nothing",
			"container", st.ID, "network", a.Network, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("network %q (%s): %w", a.Network, a.IfName, err)
	}
	return nil
}

// keptResult is the prevResult a DEL needs when libcni has none cached (an
// ADD that never finished): the checkpoint's, in the network's version.
// Specs before 0.4.0 pass no prevResult to DEL.
func (iso *Isolator) keptResult(n *Network, rt *libcni.RuntimeConf, a *attachment) []byte {
	if len(a.Result) == 0 {
		return nil
	}
	if ok, err := version.GreaterThanOrEqualTo(n.CNIVersion, "0.4.0"); err != nil || !ok {
		return nil
	}
	if cached, err := iso.cni.GetNetworkListCachedResult(n.list, rt); err == nil && cached != nil {
		return nil
	}
	prev, err := resultAsVersion(a.Result, n.CNIVersion)
	if err != nil {
		iso.log.Warn("cni del: the kept result cannot be given to the plugins", "network", a.Network, "err", err)
		return nil
	}
	return prev
}

// undoTimeout bounds a DEL: a timeout too short for the plugins must not
// also keep them from undoing the ADD it made fail.
func (iso *Isolator) undoTimeout() time.Duration { return max(iso.cfg.Timeout, DefaultTimeout) }

// forceClean removes iptables rules tagged with a container's ID that DEL
// could not: the bridge plugin finds its masquerading rules through the
// container's interface, so they stay when the namespace or the interface
// is already gone.
func (iso *Isolator) forceClean(ctx context.Context, id string) error {
	n, err := iptables.RemoveTagged(ctx, fmt.Sprintf(`id: "%s"`, id))
	if n > 0 {
		iso.log.Warn("removed iptables rules DEL left behind", "container", id, "rules", n)
	}
	return err
}

// Cleanup DELs every attachment in reverse order, then removes the
// namespace and the container's files. When a DEL fails the checkpoint is
// kept, so the next cleanup tries again.
func (iso *Isolator) Cleanup(ctx context.Context, req *isolators.CleanupRequest) error {
	id := req.ContainerID
	st, err := iso.loadState(id)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing was attached; a namespace alone cannot exist without a
		// checkpoint, but remove any debris.
		if err := unpin(iso.netnsPath(id)); err != nil {
			return err
		}
		return os.RemoveAll(iso.containerDir(id))
	}
	if err != nil {
		return err
	}
	var errs []error
	for i := len(st.Attachments) - 1; i >= 0; i-- {
		if err := iso.del(ctx, st, &st.Attachments[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	start := time.Now()
	if err := iso.forceClean(ctx, id); err != nil {
		return err
	}
	iso.log.Debug("cni rules check", "container", id, "took", time.Since(start))
	if err := unpin(st.NetNS); err != nil {
		return err
	}
	return os.RemoveAll(iso.containerDir(id))
}

// Status reports each attachment's interface and addresses.
func (iso *Isolator) Status(ctx context.Context, req *isolators.StatusRequest, resp *isolators.StatusResponse) error {
	st, err := iso.loadState(req.ContainerID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, a := range st.Attachments {
		resp.Networks = append(resp.Networks, a.status())
	}
	return nil
}

// status turns an attachment's result into what inspect shows.
func (a *attachment) status() api.NetworkStatus {
	ns := api.NetworkStatus{Name: a.Network, Interface: a.IfName}
	var r types100.Result
	if len(a.Result) == 0 || json.Unmarshal(a.Result, &r) != nil {
		return ns
	}
	idx := -1
	for i, itf := range r.Interfaces {
		if itf.Name == a.IfName && itf.Sandbox != "" {
			idx = i
			ns.MAC = itf.Mac
		}
	}
	for _, ip := range r.IPs {
		if ip.Interface == nil || *ip.Interface == idx {
			ns.IPs = append(ns.IPs, ip.Address.IP.String())
		}
	}
	return ns
}

// Usage reads the counters of the container's network namespace (its CNI
// networks, or loopback alone) from /proc/PID/net/dev, which shows the
// namespace of PID: no namespace switch. A container on the host's network
// reports none: those would be the host's.
func (iso *Isolator) Usage(ctx context.Context, req *isolators.UsageRequest, u *api.Usage) error {
	if req.Pid <= 0 {
		return fmt.Errorf("container %s has no process: %w", req.ContainerID, api.ErrNotFound)
	}
	if req.Spec != nil && !oci.HasNamespace(req.Spec, specs.NetworkNamespace) {
		return nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", req.Pid))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("container %s: process %d is gone: %w", req.ContainerID, req.Pid, api.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("network counters of container %s: %w", req.ContainerID, err)
	}
	return parseNetDev(data, u)
}

// Check runs CHECK on each of a container's attachments.
func (iso *Isolator) Check(ctx context.Context, id string) error {
	st, err := iso.loadState(id)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("container %s is on no CNI network: %w", id, api.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !isNetns(st.NetNS) {
		return fmt.Errorf("container %s: network namespace %s is gone: %w", id, st.NetNS, api.ErrWrongState)
	}
	var errs []error
	for i := range st.Attachments {
		a := &st.Attachments[i]
		n, err := networkFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %q: kept configuration: %w", a.Network, err))
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, iso.cfg.Timeout)
		err = iso.cni.CheckNetworkList(cctx, n.list, iso.runtimeConf(st, a, n))
		cancel()
		if err != nil {
			if strings.Contains(err.Error(), "could not check ipv6 dnat") {
				err = fmt.Errorf("%w (a bug of the portmap plugin before v1.2 on IPv4-only networks, containernetworking/plugins#819: upgrade the plugins or set disableCheck)", err)
			}
			errs = append(errs, fmt.Errorf("network %q (%s): %w", a.Network, a.IfName, err))
		}
	}
	return errors.Join(errs...)
}

// Attachment is a container's attachment to a network, for admins.
type Attachment struct {
	ContainerID string            `json:"container_id"`
	Network     api.NetworkStatus `json:"network"`
}

// Attachments lists the attachments to one network (all networks when name
// is empty).
func (iso *Isolator) Attachments(name string) ([]Attachment, error) {
	sts, err := iso.states()
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, st := range sts {
		for _, a := range st.Attachments {
			if name == "" || a.Network == name {
				out = append(out, Attachment{ContainerID: st.ID, Network: a.status()})
			}
		}
	}
	return out, nil
}

// capabilityArgs decides what each network gets: the port mappings go to
// the first network whose plugins handle them; bandwidth limits to every
// network that can apply them.
func capabilityArgs(nets []*Network, spec api.ContainerSpec) ([]map[string]any, error) {
	out := make([]map[string]any, len(nets))
	set := func(i int, k string, v any) {
		if out[i] == nil {
			out[i] = map[string]any{}
		}
		out[i][k] = v
	}
	if len(spec.Ports) > 0 {
		var pm []map[string]any
		for _, p := range spec.Ports {
			m := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": p.Protocol}
			if p.HostIP != "" {
				m["hostIP"] = p.HostIP
			}
			pm = append(pm, m)
		}
		found := false
		for i, n := range nets {
			if n.hasCapability("portMappings") {
				set(i, "portMappings", pm)
				found = true
				break
			}
		}
		if !found {
			return nil, portsError(fmt.Errorf("network %q cannot publish ports: no plugin declares the portMappings capability (add the portmap plugin): %w", nets[0].Name, api.ErrInvalid))
		}
	}
	if b := spec.Bandwidth; b != nil {
		bw := map[string]any{}
		if b.IngressRate > 0 {
			bw["ingressRate"], bw["ingressBurst"] = b.IngressRate, b.IngressBurst
		}
		if b.EgressRate > 0 {
			bw["egressRate"], bw["egressBurst"] = b.EgressRate, b.EgressBurst
		}
		found := false
		for i, n := range nets {
			if n.hasCapability("bandwidth") {
				set(i, "bandwidth", bw)
				found = true
			}
		}
		if !found {
			return nil, &api.FieldError{Field: "bandwidth", Err: fmt.Errorf("network %q cannot limit bandwidth: no plugin declares the bandwidth capability (add the bandwidth plugin): %w", nets[0].Name, api.ErrInvalid)}
		}
	}
	return out, nil
}
