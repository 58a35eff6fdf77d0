package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/safefile"
)

// Networks are shared. Every work dir whose config dir is the same (by
// default /etc/cni/net.d) uses the same networks, and with them the same
// host-local leases: a network's lease dir is named in its configuration
// (under the state dir of the work dir that created it), so work dirs never
// hand out one address twice. Other runtimes may keep networks of their own
// in the config dir. So this work dir's records (its checkpoints and its
// libcni cache) are never the whole truth about a network, and:
//
//   - Recover runs the plugins' GC (which frees whatever the list of valid
//     attachments does not name) only on networks this work dir created
//     (an ownership record, networks-owned/NAME.json) whose every lease
//     dir lies under its state dir, and it counts as valid every lease of a
//     container it does not know to be gone, whoever holds it;
//   - Remove refuses a network while its leases name containers this work
//     dir does not know;
//   - every ADD holds a shared lock on the network's lease lock file (made
//     by `network create` next to the lease dir, .NAME.lock) while the GC
//     and Remove hold it exclusively: a lease is never made between their
//     look at the leases and their act.

// ownedRecord says that this work dir created a network.
type ownedRecord struct {
	Network string `json:"network"`
	File    string `json:"file"`
}

func (iso *Isolator) ownedPath(network string) string {
	return filepath.Join(iso.cfg.StateDir, "networks-owned", network+".json")
}

func (iso *Isolator) saveOwned(network, file string) error {
	return writeRecord(iso.ownedPath(network), ownedRecord{Network: network, File: file})
}

func (iso *Isolator) removeOwned(network string) error {
	return removeRecord(iso.ownedPath(network))
}

// mayCollect reports whether this work dir may run the plugins' GC on n:
// it created n, and n's addresses all come from host-local lease dirs
// under its state dir (a file edited since, or another work dir's network
// of the same name, fails that).
func (iso *Isolator) mayCollect(n *Network) bool {
	if !api.ValidName(n.Name) {
		return false
	}
	if _, err := os.Stat(iso.ownedPath(n.Name)); err != nil {
		return false
	}
	for _, p := range n.list.Plugins {
		if t := p.Network.IPAM.Type; t != "" && t != "host-local" {
			return false
		}
	}
	dirs := leaseDirs(n)
	for _, dir := range dirs {
		rel, err := filepath.Rel(filepath.Clean(iso.cfg.StateDir), filepath.Clean(dir))
		if err != nil || !filepath.IsLocal(rel) {
			return false
		}
	}
	return len(dirs) > 0
}

// leaseLockPath is the lock file of a network's leases in the host-local
// data dir dataDir: beside the lease dir, where host-local's own garbage
// collection does not look.
func leaseLockPath(dataDir, network string) string {
	return filepath.Join(dataDir, "."+network+".lock")
}

// makeLeaseLocks creates the lease lock files of a network being created.
func makeLeaseLocks(n *Network) error {
	for _, dir := range leaseDirs(n) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(leaseLockPath(dir, n.Name), os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("lease lock of network %q: %w", n.Name, err)
		}
		_ = f.Close()
	}
	return nil
}

// leaseLocks are the locks held on a network's lease lock files.
type leaseLocks []*os.File

// lockLeases locks the lease lock files of a network: shared for an ADD,
// exclusive for the GC and Remove. Only the files that exist are locked:
// `network create` makes them, and caisson makes none in the dirs of a
// network it did not create.
func lockLeases(n *Network, exclusive bool) (leaseLocks, error) {
	if !api.ValidName(n.Name) {
		return nil, nil
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	var held leaseLocks
	for _, dir := range leaseDirs(n) {
		f, err := os.OpenFile(leaseLockPath(dir, n.Name), os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			held.unlock()
			return nil, fmt.Errorf("lease lock of network %q: %w", n.Name, err)
		}
		for {
			err = unix.Flock(int(f.Fd()), how)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err != nil {
			_ = f.Close()
			held.unlock()
			return nil, fmt.Errorf("lease lock of network %q: %w", n.Name, err)
		}
		held = append(held, f)
	}
	return held, nil
}

// unlock releases the locks; closing the files does.
func (l leaseLocks) unlock() {
	for _, f := range l {
		_ = f.Close()
	}
}

// maxLeaseFile bounds what is read of a lease file: a container ID and an
// interface name.
const maxLeaseFile = 4 << 10

// leaseHolders lists the attachments that hold a network's host-local
// leases: the container ID and interface each lease file names (the
// interface is empty in the files of plugins before 0.7). A file that is
// not a lease is skipped.
func leaseHolders(n *Network) ([]types.GCAttachment, error) {
	var out []types.GCAttachment
	for _, dataDir := range leaseDirs(n) {
		dir := filepath.Join(dataDir, n.Name)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("leases of network %q: %w", n.Name, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || net.ParseIP(e.Name()) == nil {
				continue
			}
			data, err := safefile.ReadFile(filepath.Join(dir, e.Name()), maxLeaseFile)
			if errors.Is(err, fs.ErrNotExist) {
				continue // released meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("lease of network %q: %w", n.Name, err)
			}
			if a, ok := parseLease(data); ok {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// parseLease reads a host-local lease file: "ID\r\nIFNAME", "ID" alone
// (plugins before 0.7), or the JSON form {"kind": "host-local-v1",
// "value": {"id": ..., "if": ...}}.
func parseLease(data []byte) (types.GCAttachment, bool) {
	var kv struct {
		Kind  string `json:"kind"`
		Value struct {
			ID string `json:"id"`
			IF string `json:"if"`
		} `json:"value"`
	}
	if json.Unmarshal(data, &kv) == nil && kv.Kind != "" {
		return types.GCAttachment{ContainerID: kv.Value.ID, IfName: kv.Value.IF}, kv.Value.ID != ""
	}
	id, ifname, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	id = strings.TrimSpace(id)
	return types.GCAttachment{ContainerID: id, IfName: strings.TrimSpace(ifname)}, id != ""
}

// knownIDs are the containers this work dir has records of: checkpoints and
// libcni cache entries.
func (iso *Isolator) knownIDs() (map[string]bool, error) {
	known := map[string]bool{}
	entries, err := os.ReadDir(iso.containersDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		known[e.Name()] = true
	}
	cached, err := iso.cni.GetCachedAttachments("")
	if err != nil {
		return nil, err
	}
	for _, c := range cached {
		known[c.ContainerID] = true
	}
	return known, nil
}
