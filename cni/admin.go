package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/isolators"
)

// Create writes a bridge network's configuration list to the config dir. It
// refuses a name that exists, a subnet that cannot hold containers (see
// parseSubnet) or that overlaps another network's or an address of this
// host, a bridge another network uses, and an existing interface of the
// bridge's name unless it is a bridge nobody uses (see claimBridge).
func (iso *Isolator) Create(o CreateOptions) (*Network, error) {
	if !api.ValidName(o.Name) || o.Name == api.NetworkHost || o.Name == api.NetworkNone {
		return nil, fmt.Errorf("network name %q is not valid: %w", o.Name, api.ErrInvalid)
	}
	if o.Bridge == "" {
		o.Bridge = bridgeName(o.Name)
	}
	data, err := iso.confList(o)
	if err != nil {
		return nil, err
	}
	l, err := iso.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if n, err := iso.Network(o.Name); err == nil {
		return nil, fmt.Errorf("network %q already exists (%s): %w", o.Name, n.File, api.ErrAlreadyExists)
	} else if !errors.Is(err, api.ErrNotFound) {
		return nil, err
	}
	prefix, gw, err := parseSubnet(o.Subnet, o.Gateway)
	if err != nil {
		return nil, err
	}
	_, subnet, _ := net.ParseCIDR(prefix.String())
	nets, _, err := iso.Networks()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Bridge == o.Bridge {
			return nil, fmt.Errorf("bridge %s is already used by network %q: %w", o.Bridge, n.Name, api.ErrConflict)
		}
		for _, s := range n.Subnets {
			if _, other, err := net.ParseCIDR(s); err == nil && overlaps(subnet, other) {
				return nil, fmt.Errorf("subnet %s overlaps network %q (%s): %w", subnet, n.Name, other, api.ErrConflict)
			}
		}
	}
	if err := checkHostOverlap(subnet, o.Bridge); err != nil {
		return nil, err
	}
	path := filepath.Join(iso.cfg.ConfDir, o.Name+".conflist")
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists but does not define network %q: %w", path, o.Name, api.ErrAlreadyExists)
	}
	if err := iso.claimBridge(o.Name, o.Bridge, net.IP(gw.AsSlice())); err != nil {
		return nil, fmt.Errorf("network %q: %w", o.Name, err)
	}
	// The ownership record and the lease lock exist before the file: a
	// network that other work dirs can see is one this work dir may
	// collect, and its lease lock is there for their ADDs to take.
	n, err := networkFromBytes(data)
	if err != nil {
		return nil, err
	}
	if err := iso.saveOwned(o.Name, path); err != nil {
		return nil, fmt.Errorf("network %q: %w", o.Name, err)
	}
	if err := makeLeaseLocks(n); err != nil {
		return nil, errors.Join(err, iso.removeOwned(o.Name))
	}
	if err := os.MkdirAll(iso.cfg.ConfDir, 0o755); err != nil {
		return nil, errors.Join(err, iso.removeOwned(o.Name))
	}
	if err := atomicfile.Write(path, data, 0o644, true); err != nil {
		return nil, errors.Join(err, iso.removeOwned(o.Name))
	}
	iso.log.Info("network created", "network", o.Name, "subnet", subnet.String(), "bridge", o.Bridge, "file", path)
	return loadFile(path)
}

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// checkHostOverlap refuses a subnet that overlaps an address of this host
// (other than on the network's own bridge).
func checkHostOverlap(subnet *net.IPNet, bridge string) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, itf := range ifs {
		if itf.Name == bridge {
			continue
		}
		addrs, err := itf.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && overlaps(subnet, ipn) {
				return fmt.Errorf("subnet %s overlaps %s on this host's interface %s: %w", subnet, ipn, itf.Name, api.ErrConflict)
			}
		}
	}
	return nil
}

// Remove deletes a network's configuration file, its bridge (when caisson
// created it and nothing else uses it, see releaseBridge) and its
// host-local leases directory. It refuses while containers are attached:
// this work dir's, and any container of another work dir or runtime that
// holds a lease of the network.
func (iso *Isolator) Remove(name string) error {
	l, err := iso.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	n, err := iso.Network(name)
	if err != nil {
		return err
	}
	atts, err := iso.Attachments(name)
	if err != nil {
		return err
	}
	if len(atts) > 0 {
		var ids []string
		for _, a := range atts {
			ids = append(ids, short(a.ContainerID))
		}
		return fmt.Errorf("network %q has %d attachment(s) (containers %s): remove them first: %w", name, len(atts), strings.Join(ids, ", "), api.ErrConflict)
	}
	leases, err := lockLeases(n, true)
	if err != nil {
		return err
	}
	defer leases.unlock()
	if others, err := iso.othersLeases(n); err != nil {
		return err
	} else if len(others) > 0 {
		return fmt.Errorf("network %q has %d address(es) leased to containers this work dir does not know (%s; another work dir's or runtime's): remove them first: %w",
			name, len(others), strings.Join(others, ", "), api.ErrConflict)
	}
	if err := os.Remove(n.File); err != nil {
		return err
	}
	if err := iso.removeOwned(name); err != nil {
		return err
	}
	var errs []error
	if n.Bridge != "" {
		if err := iso.releaseBridge(n); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range leaseDirs(n) {
		if err := os.RemoveAll(filepath.Join(dir, n.Name)); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(leaseLockPath(dir, n.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	iso.log.Info("network removed", "network", name, "file", n.File)
	return errors.Join(errs...)
}

// othersLeases names the containers that hold leases of n but that this
// work dir has no record of.
func (iso *Isolator) othersLeases(n *Network) ([]string, error) {
	holders, err := leaseHolders(n)
	if err != nil {
		return nil, err
	}
	known, err := iso.knownIDs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range holders {
		if !known[h.ContainerID] {
			out = append(out, short(h.ContainerID))
		}
	}
	return out, nil
}

// leaseDirs are the host-local data dirs a network's plugins use.
func leaseDirs(n *Network) []string {
	var out []string
	for _, p := range n.list.Plugins {
		if p.Network.IPAM.Type != "host-local" {
			continue
		}
		var c struct {
			IPAM struct {
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		_ = json.Unmarshal(p.Bytes, &c)
		if c.IPAM.DataDir == "" {
			c.IPAM.DataDir = "/var/lib/cni/networks"
		}
		out = append(out, c.IPAM.DataDir)
	}
	return out
}

// Recover destroys what containers the containerizer no longer knows hold
// (their checkpointed attachments are DELed, their namespaces removed),
// DELs attachments the libcni cache holds for unknown containers, and runs
// GCNetworkList on the networks this work dir may collect (see mayCollect;
// at spec 1.1.0 the plugins then free anything else they hold) with the
// live attachments and every lease of a container not known to be gone
// (see collect).
func (iso *Isolator) Recover(ctx context.Context, req *isolators.RecoverRequest) error {
	live := map[string]bool{}
	for _, c := range req.Containers {
		live[c.ID] = true
	}
	orphan := map[string]bool{}
	for _, id := range req.Orphans {
		orphan[id] = !live[id]
	}
	// gone are the containers this work dir knows are no more: their
	// leases are the only ones the GC may free.
	gone := map[string]bool{}
	for id, o := range orphan {
		gone[id] = o
	}
	var errs []error
	entries, err := os.ReadDir(iso.containersDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if live[e.Name()] {
			continue
		}
		gone[e.Name()] = true
		iso.log.Warn("releasing the networks of an orphan container", "container", e.Name())
		if err := iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: e.Name()}); err != nil {
			errs = append(errs, err)
		}
	}
	var valid []types.GCAttachment
	sts, err := iso.states()
	if err != nil {
		errs = append(errs, err)
	}
	for _, st := range sts {
		for _, a := range st.Attachments {
			valid = append(valid, types.GCAttachment{ContainerID: st.ID, IfName: a.IfName})
		}
	}
	cached, err := iso.cni.GetCachedAttachments("")
	if err != nil {
		errs = append(errs, err)
	}
	for _, c := range cached {
		if live[c.ContainerID] {
			valid = append(valid, types.GCAttachment{ContainerID: c.ContainerID, IfName: c.IfName})
			continue
		}
		// The cache is this work dir's own: its namespace is ours to
		// remove below. A stale entry is DELed with its own cached
		// configuration, which may differ from the file's now.
		orphan[c.ContainerID] = true
		gone[c.ContainerID] = true
		n, err := networkFromBytes(c.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("cached attachment %s/%s: %w", c.Network, c.ContainerID, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: c.ContainerID, IfName: c.IfName, Args: c.CniArgs, CapabilityArgs: c.CapabilityArgs}
		if isNetns(c.NetNS) {
			rt.NetNS = c.NetNS
		}
		iso.log.Warn("deleting a stale CNI attachment", "network", c.Network, "container", c.ContainerID, "ifname", c.IfName)
		dctx, cancel := context.WithTimeout(ctx, iso.undoTimeout())
		if err := iso.cni.DelNetworkList(dctx, n.list, rt); err != nil {
			errs = append(errs, fmt.Errorf("network %q: stale attachment of %s: %w", c.Network, short(c.ContainerID), err))
		} else if err := iso.forceClean(ctx, c.ContainerID); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	// Namespaces of orphans that no checkpoint names (after the DELs
	// above, which work best while the namespace is there). The run dir
	// may be shared with other work dirs: a namespace that is merely not
	// live here may be theirs.
	nsEntries, _ := os.ReadDir(filepath.Join(iso.cfg.RunDir, "netns"))
	for _, e := range nsEntries {
		if orphan[e.Name()] {
			if _, err := os.Stat(iso.containerDir(e.Name())); errors.Is(err, fs.ErrNotExist) {
				if err := unpin(filepath.Join(iso.cfg.RunDir, "netns", e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	nets, _, err := iso.Networks()
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range nets {
		if !iso.mayCollect(n) {
			continue // another work dir's or runtime's: the DELs above did our part
		}
		if iso.checkPlugins(n) != nil {
			continue // a network that cannot be used holds nothing to collect
		}
		if err := iso.collect(ctx, n, valid, gone); err != nil {
			errs = append(errs, fmt.Errorf("network %q: gc: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// collect runs GCNetworkList on n with the attachments in valid and the
// holder of every lease of n whose container is not in gone: the plugins
// free only what this work dir's containers that are no more held. The
// exclusive lease lock keeps ADDs, whichever work dir runs them, from
// making a lease between the look at the leases and the GC.
func (iso *Isolator) collect(ctx context.Context, n *Network, valid []types.GCAttachment, gone map[string]bool) error {
	if err := makeLeaseLocks(n); err != nil { // under our state dir (mayCollect)
		return err
	}
	leases, err := lockLeases(n, true)
	if err != nil {
		return err
	}
	defer leases.unlock()
	holders, err := leaseHolders(n)
	if err != nil {
		return err
	}
	for _, h := range holders {
		if !gone[h.ContainerID] {
			valid = append(valid, h)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, iso.cfg.Timeout)
	defer cancel()
	return iso.cni.GCNetworkList(ctx, n.list, &libcni.GCArgs{ValidAttachments: valid})
}
