package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

// realPluginsEnv names, for collectingBridge, the dir of the real plugins;
// leaseLockEnv a lease lock file that caisson must hold, shared during an
// ADD and exclusively during a GC.
const (
	realPluginsEnv = "CAISSON_TEST_REAL_PLUGINS"
	leaseLockEnv   = "CAISSON_TEST_LEASE_LOCK"
)

// checkLeaseLock fails unless the lease lock named by leaseLockEnv is held
// by caisson as a plugin running cmd needs: a lock this process can take
// (exclusively for an ADD, shared for a GC) is not held.
func checkLeaseLock(cmd string) error {
	path := os.Getenv(leaseLockEnv)
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	how := unix.LOCK_EX
	if cmd == "GC" {
		how = unix.LOCK_SH
	}
	err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil
	}
	return fmt.Errorf("%s without the lease lock held: %v", cmd, err)
}

// collectingBridge is the bridge plugin as it behaves once its IPAM
// collects garbage, as host-local's GC is specified upstream: a GC frees
// every lease whose container and interface the valid attachments do not
// name (a lease without an interface, written by plugins before 0.7, by its
// container alone). The plugins v1.9.1 accept GC and do nothing. Every
// other command runs the real bridge plugin.
func collectingBridge() int {
	cmd := os.Getenv("CNI_COMMAND")
	if cmd == "ADD" || cmd == "GC" {
		if err := checkLeaseLock(cmd); err != nil {
			fmt.Printf(`{"cniVersion": "1.1.0", "code": 999, "msg": %q}`, err.Error())
			return 1
		}
	}
	if cmd != "GC" {
		real := filepath.Join(os.Getenv(realPluginsEnv), "bridge")
		err := syscall.Exec(real, append([]string{real}, os.Args[1:]...), os.Environ())
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var conf struct {
		Name string `json:"name"`
		IPAM struct {
			DataDir string `json:"dataDir"`
		} `json:"ipam"`
		Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
	}
	data, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = json.Unmarshal(data, &conf)
	}
	if err != nil || conf.IPAM.DataDir == "" {
		fmt.Fprintf(os.Stderr, "collecting bridge: config %s: %v\n", data, err)
		return 1
	}
	dir := filepath.Join(conf.IPAM.DataDir, conf.Name)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		id, ifname, _ := strings.Cut(strings.TrimSpace(string(b)), "\r\n")
		valid := false
		for _, v := range conf.Valid {
			valid = valid || v.ContainerID == id && (ifname == "" || v.IfName == ifname)
		}
		if !valid {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return 0
}

// collectingPlugins makes a plugin dir of real's plugins in which bridge
// is collectingBridge.
func collectingPlugins(t *testing.T, real string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		target := filepath.Join(real, e.Name())
		if e.Name() == "bridge" {
			target = self
		}
		if err := os.Symlink(target, filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(realPluginsEnv, real)
	return dir
}

// leaseOf returns the lease file of a container's address on a network of
// the env (in the lease dir of the work dir that created it).
func (e *env) leaseOf(t *testing.T, owner *env, id string) string {
	t.Helper()
	st := e.status(t, id)
	if len(st) != 1 || len(st[0].IPs) != 1 {
		t.Fatalf("status of %s = %+v", id, st)
	}
	return filepath.Join(owner.iso.cfg.StateDir, "networks", e.net, st[0].IPs[0])
}

func mustExist(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// TestRecoverAcrossWorkDirs: two work dirs share a config dir, with a
// network one of them created and a network of another runtime, at spec
// 1.1.0 with plugins whose GC frees every lease not named valid. Each
// work dir's recovery frees only what its own records say is gone: the
// other's leases stay (and its container answers), and the other runtime's
// network is left alone; `network rm` is refused while containers of
// another work dir hold leases.
func TestRecoverAcrossWorkDirs(t *testing.T) {
	testutil.RequiresRoot(t)
	_, newer := cnitest.RequirePlugins(t)
	plugins := collectingPlugins(t, newer)
	e := newEnv(t, plugins, "1.1.0", 24)
	s := e.sibling(t)
	ctx := context.Background()
	t.Setenv(leaseLockEnv, leaseLockPath(filepath.Join(e.iso.cfg.StateDir, "networks"), e.net))

	// Another runtime's network, with a lease of its container.
	foreignData := filepath.Join(t.TempDir(), "leases")
	foreign := "f" + e.net
	conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": %q, "plugins": [{"type": "bridge", "bridge": "cf%s",
		"ipam": {"type": "host-local", "subnet": "192.0.2.0/24", "dataDir": %q}}]}`, foreign, randHex(5), foreignData)
	if err := os.WriteFile(filepath.Join(e.confDir, foreign+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	foreignLease := filepath.Join(foreignData, foreign, "192.0.2.7")
	if err := os.MkdirAll(filepath.Dir(foreignLease), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(foreignLease, []byte("theirs\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}

	ours, resp := e.mustPrepare(t, api.ContainerSpec{})
	theirs, _ := s.mustPrepare(t, api.ContainerSpec{})
	ourLease, theirLease := e.leaseOf(t, e, ours), s.leaseOf(t, e, theirs)
	serveIn(t, resp.Namespaces[0].Path, 8080, "still here")
	// A lease of a container the creator's records say is gone (an
	// orphan whose DEL left it): the creator's GC frees it.
	gone := "c" + randHex(16)
	goneLease := filepath.Join(e.iso.cfg.StateDir, "networks", e.net, e.pfx+"250")
	if err := os.WriteFile(goneLease, []byte(gone+"\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := s.iso.Recover(ctx, &isolators.RecoverRequest{Containers: []isolators.RecoveredContainer{{ID: theirs}}}); err != nil {
		t.Fatalf("the sibling's Recover: %v", err)
	}
	mustExist(t, "the creator's lease after the sibling's recovery", ourLease)
	mustExist(t, "the other runtime's lease after the sibling's recovery", foreignLease)
	if err := e.iso.Recover(ctx, &isolators.RecoverRequest{Containers: []isolators.RecoveredContainer{{ID: ours}}, Orphans: []string{gone}}); err != nil {
		t.Fatalf("the creator's Recover: %v", err)
	}
	mustExist(t, "the sibling's lease after the creator's recovery", theirLease)
	mustExist(t, "the creator's lease after its recovery", ourLease)
	mustExist(t, "the other runtime's lease after the creator's recovery", foreignLease)
	if _, err := os.Stat(goneLease); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lease of a container the creator knows is gone survived its GC: %v", err)
	}
	if body, err := cnitest.HTTPGet(fmt.Sprintf("http://%s:8080/", e.status(t, ours)[0].IPs[0])); err != nil || body != "still here" {
		t.Errorf("the creator's container after both recoveries: %q, %v", body, err)
	}

	// network rm, by either work dir, while the other's container holds a
	// lease; and of the other runtime's network.
	for _, who := range []*env{e, s} {
		mustFail(t, who.iso.Remove(foreign), api.ErrConflict, "leased to containers this work dir does not know", "theirs")
	}
	if err := s.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: theirs}); err != nil {
		t.Fatal(err)
	}
	mustFail(t, s.iso.Remove(e.net), api.ErrConflict, "leased to containers this work dir does not know", short(ours))
	theirs, _ = s.mustPrepare(t, api.ContainerSpec{})
	theirLease = s.leaseOf(t, e, theirs)
	if err := e.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: ours}); err != nil {
		t.Fatal(err)
	}
	mustFail(t, e.iso.Remove(e.net), api.ErrConflict, "leased to containers this work dir does not know", short(theirs))
	for _, n := range []string{e.net, foreign} {
		if _, err := e.iso.Network(n); err != nil {
			t.Errorf("network %s after a refused Remove: %v", n, err)
		}
	}
	mustExist(t, "the sibling's lease after the refused Remove", theirLease)
	if err := s.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: theirs}); err != nil {
		t.Fatal(err)
	}
	if err := e.iso.Remove(e.net); err != nil {
		t.Fatalf("Remove once no container holds a lease: %v", err)
	}
}
