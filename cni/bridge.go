package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
)

// Bridge ownership. `network rm` deletes a bridge only when caisson made the
// device: a record under the state dir (bridges/NAME.json) says so. Create
// writes the record when the name is free, and caisson itself creates the
// device before the network's first ADD (ip link add fails if the name was
// taken meanwhile, so the record never claims a device someone else made).
// The record says so before `ip link add` runs (Creating), so a crash before
// Created is saved leaves a bridge that is still known as caisson's: one
// found just as `ip link add` leaves it (no ports, no master, no address).
// A bridge that exists at Create is used but never deleted, and only when it
// is a bridge of nobody's: not a port of another device, without ports, and
// without addresses other than the network's gateway. One that appears
// between Create and the first ADD of this work dir (made by anyone, or by
// the bridge plugin for the containers of another work dir that shares the
// config dir) is never deleted either, and is used unless it is not a
// bridge or is a port of another device: ports and addresses are to be
// expected then.

// bridgeRecord is what caisson knows of a bridge device it may create.
type bridgeRecord struct {
	// Network is the network that asked for the device.
	Network string `json:"network"`
	// Gateway is the network's gateway, the one address the bridge may
	// carry when caisson finds it made by someone else.
	Gateway string `json:"gateway"`
	// Created is set once caisson created the device.
	Created bool `json:"created"`
	// Creating is set before caisson runs `ip link add`: a crash before
	// Created is saved leaves a device that only this says is caisson's.
	Creating bool `json:"creating,omitempty"`
}

// owns reports whether the device l is caisson's by its record: created
// by caisson, or found just as `ip link add` leaves a bridge (no ports, no
// master, no address the kernel did not add) where caisson was about to
// run it.
func (rec *bridgeRecord) owns(l *link) bool {
	if rec == nil {
		return false
	}
	return rec.Created || rec.Creating && l.bridge && l.master == "" && len(l.ports) == 0 && !slices.ContainsFunc(l.addrs, func(a *net.IPNet) bool {
		return !kernelAddr(a.IP)
	})
}

func (iso *Isolator) bridgeRecordPath(bridge string) string {
	return filepath.Join(iso.cfg.StateDir, "bridges", bridge+".json")
}

// loadBridgeRecord returns a bridge's record; nil when it has none.
func (iso *Isolator) loadBridgeRecord(bridge string) (*bridgeRecord, error) {
	if !validIfName(bridge) {
		return nil, nil
	}
	data, err := os.ReadFile(iso.bridgeRecordPath(bridge))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec bridgeRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("record of bridge %s: %w", bridge, err)
	}
	return &rec, nil
}

func (iso *Isolator) saveBridgeRecord(bridge string, rec *bridgeRecord) error {
	return writeRecord(iso.bridgeRecordPath(bridge), rec)
}

func (iso *Isolator) removeBridgeRecord(bridge string) error {
	return removeRecord(iso.bridgeRecordPath(bridge))
}

// writeRecord writes one of the isolator's own records as JSON, durably,
// making its directory when needed.
func writeRecord(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600, true)
}

// removeRecord removes one of the isolator's own records; one already gone
// is no error.
func removeRecord(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// link is what matters of an existing network interface.
type link struct {
	name   string
	bridge bool
	master string   // the device it is a port of
	ports  []string // a bridge's ports
	addrs  []*net.IPNet
}

// readLink describes an interface of this host; fs.ErrNotExist when there
// is none of that name.
func readLink(name string) (*link, error) {
	if !validIfName(name) {
		return nil, fmt.Errorf("%q is not an interface name: %w", name, api.ErrInvalid)
	}
	itf, err := net.InterfaceByName(name)
	if err != nil {
		if _, serr := os.Lstat(filepath.Join("/sys/class/net", name)); errors.Is(serr, fs.ErrNotExist) {
			return nil, fmt.Errorf("interface %s: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	sys := filepath.Join("/sys/class/net", name)
	l := &link{name: name}
	if _, err := os.Stat(filepath.Join(sys, "bridge")); err == nil {
		l.bridge = true
	}
	if dst, err := os.Readlink(filepath.Join(sys, "master")); err == nil {
		l.master = filepath.Base(dst)
	}
	if ports, err := os.ReadDir(filepath.Join(sys, "brif")); err == nil {
		for _, p := range ports {
			l.ports = append(l.ports, p.Name())
		}
	}
	addrs, err := itf.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			l.addrs = append(l.addrs, ipn)
		}
	}
	return l, nil
}

// checkUnused refuses an existing interface as the bridge of a network whose
// gateway is gw unless it is a bridge nobody uses: not a port of another
// device, without ports, and without an address but gw (and IPv6
// link-local ones, which the kernel adds by itself; an IPv4 link-local one,
// 169.254.0.0/16, is someone's).
func (l *link) checkUnused(gw net.IP) error {
	if err := l.checkBridge(); err != nil {
		return err
	}
	if len(l.ports) > 0 {
		return fmt.Errorf("bridge %s is in use: it has ports (%s): %w", l.name, strings.Join(l.ports, ", "), api.ErrConflict)
	}
	for _, a := range l.addrs {
		if !a.IP.Equal(gw) && !kernelAddr(a.IP) {
			return fmt.Errorf("bridge %s is in use: it has address %s, not the network's gateway %s: %w", l.name, a, gw, api.ErrConflict)
		}
	}
	return nil
}

// checkBridge refuses an interface that cannot be a network's bridge at
// all: one that is not a bridge, or a bridge that is a port of another
// device.
func (l *link) checkBridge() error {
	if !l.bridge {
		return fmt.Errorf("interface %s exists and is not a bridge: %w", l.name, api.ErrConflict)
	}
	if l.master != "" {
		return fmt.Errorf("bridge %s is a port of %s: %w", l.name, l.master, api.ErrConflict)
	}
	return nil
}

// kernelAddr reports whether the kernel gives an interface ip by itself: an
// IPv6 link-local address. IPv4 link-local addresses are configured by
// someone (avahi-autoipd, an admin).
func kernelAddr(ip net.IP) bool { return ip.To4() == nil && ip.IsLinkLocalUnicast() }

// claimBridge decides, as a network is created, whether caisson may create
// its bridge (the name is free) or uses a bridge it finds (one nobody
// uses); it refuses any other interface of that name.
func (iso *Isolator) claimBridge(network, bridge string, gw net.IP) error {
	rec, err := iso.loadBridgeRecord(bridge)
	if err != nil {
		return err
	}
	l, err := readLink(bridge)
	if errors.Is(err, fs.ErrNotExist) {
		return iso.saveBridgeRecord(bridge, &bridgeRecord{Network: network, Gateway: gw.String()})
	}
	if err != nil {
		return err
	}
	if err := l.checkUnused(gw); err != nil {
		return err
	}
	if rec.owns(l) { // caisson's own, left by an earlier network
		return iso.saveBridgeRecord(bridge, &bridgeRecord{Network: network, Gateway: gw.String(), Created: true})
	}
	iso.log.Info("network uses a bridge caisson did not create: it will not delete it", "network", network, "bridge", bridge)
	return iso.removeBridgeRecord(bridge)
}

// ensureBridge creates, before a network's first ADD, the bridge that its
// record lets caisson create, and records that caisson made it. A device
// that took the name since the network was created is never caisson's: the
// record goes, and the device is used if it can be a bridge (a bridge that
// is no port of another device). Its ports and addresses are no reason to
// refuse it at this point: a network is shared, and another work dir's
// containers on it, attached before this one's first (the bridge plugin
// made the bridge for them), are its ports, with the gateway's address.
func (iso *Isolator) ensureBridge(n *Network) error {
	rec, err := iso.loadBridgeRecord(n.Bridge)
	if err != nil || rec == nil {
		return err
	}
	if _, err := readLink(n.Bridge); err == nil && rec.Created {
		return nil
	}
	l, err := iso.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	if rec, err = iso.loadBridgeRecord(n.Bridge); err != nil || rec == nil {
		return err
	}
	existing, err := readLink(n.Bridge)
	if errors.Is(err, fs.ErrNotExist) && iso.ip != "" {
		args := []string{"link", "add", "name", n.Bridge}
		if mtu := bridgeMTU(n); mtu > 0 {
			args = append(args, "mtu", fmt.Sprint(mtu))
		}
		rec.Creating = true
		if err := iso.saveBridgeRecord(n.Bridge, rec); err != nil {
			return fmt.Errorf("network %q: bridge %s: %w", n.Name, n.Bridge, err)
		}
		out, aerr := exec.Command(iso.ip, append(args, "type", "bridge")...).CombinedOutput()
		if aerr == nil {
			iso.crash("cni:bridge")
			rec.Created, rec.Creating = true, false
			iso.log.Info("bridge created", "network", n.Name, "bridge", n.Bridge)
			return iso.saveBridgeRecord(n.Bridge, rec)
		}
		rec.Creating = false
		if err := iso.saveBridgeRecord(n.Bridge, rec); err != nil {
			return fmt.Errorf("network %q: bridge %s: %w", n.Name, n.Bridge, err)
		}
		// Someone may have taken the name just now.
		if existing, err = readLink(n.Bridge); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("network %q: create bridge %s: %v: %s", n.Name, n.Bridge, aerr, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// No ip command: the bridge plugin creates the device, and
			// caisson never deletes it.
			return iso.removeBridgeRecord(n.Bridge)
		}
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if rec.owns(existing) {
		if !rec.Created {
			iso.log.Warn("bridge created by a launch that died before it recorded so: it is caisson's", "network", n.Name, "bridge", n.Bridge)
			rec.Created, rec.Creating = true, false
			return iso.saveBridgeRecord(n.Bridge, rec)
		}
		return nil
	}
	if err := existing.checkBridge(); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	iso.log.Warn("the network's bridge was made by someone else since the network was created: caisson will not delete it",
		"network", n.Name, "bridge", n.Bridge, "ports", existing.ports)
	return iso.removeBridgeRecord(n.Bridge)
}

// bridgeMTU is the mtu of a network's bridge plugin.
func bridgeMTU(n *Network) int {
	for _, p := range n.list.Plugins {
		if p.Network.Type != "bridge" {
			continue
		}
		var c struct {
			MTU int `json:"mtu"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil {
			return c.MTU
		}
	}
	return 0
}

// releaseBridge deletes a removed network's bridge if caisson created it
// and no other network or device uses it; any other bridge stays.
func (iso *Isolator) releaseBridge(n *Network) error {
	rec, err := iso.loadBridgeRecord(n.Bridge)
	if err != nil {
		return err
	}
	if nets, _, err := iso.Networks(); err == nil {
		for _, o := range nets {
			if o.Bridge == n.Bridge {
				return nil // still used: the record stays for that network
			}
		}
	}
	l, err := readLink(n.Bridge)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return iso.removeBridgeRecord(n.Bridge)
	case err != nil:
		return err
	case !rec.owns(l):
		iso.log.Info("bridge left in place: caisson did not create it", "network", n.Name, "bridge", n.Bridge)
		return nil
	case !l.bridge || l.master != "" || len(l.ports) > 0:
		iso.log.Warn("bridge left in place: it is no longer a bridge of caisson's alone", "network", n.Name, "bridge", n.Bridge,
			"ports", l.ports, "master", l.master)
		return iso.removeBridgeRecord(n.Bridge)
	case iso.ip == "":
		return fmt.Errorf("delete bridge %s: the ip command is not installed: %w", n.Bridge, api.ErrUnavailable)
	}
	if out, err := exec.Command(iso.ip, "link", "delete", "dev", n.Bridge).CombinedOutput(); err != nil {
		return fmt.Errorf("delete bridge %s: %v: %s", n.Bridge, err, strings.TrimSpace(string(out)))
	}
	return iso.removeBridgeRecord(n.Bridge)
}
