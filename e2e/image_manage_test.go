//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/caisson/caisson/containerizer/image"
	"github.com/caisson/caisson/containerizer/image/imagetest"
)

// imageLs returns image ls --format json.
func (e *env) imageLs() []image.ImageInfo {
	e.t.Helper()
	var list []image.ImageInfo
	if err := json.Unmarshal([]byte(e.ok("image", "ls", "--format", "json")), &list); err != nil {
		e.t.Fatalf("image ls: %v", err)
	}
	return list
}

// TestImageLsRmPrune runs image ls, rm and prune against containers that
// use the images, exited ones included.
func TestImageLsRmPrune(t *testing.T) {
	e := newEnv(t)
	cfg := imagetest.Config{Cmd: []string{"true"}}
	base := imagetest.LayerTar(t, e.rootfs)
	extra := craftTar(t, []tarEntry{{name: "extra", body: "extra"}})
	dir := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, dir, "a", imagetest.ImageFromLayers(t, cfg, true, base))
	imagetest.WriteLayout(t, dir, "b", imagetest.ImageFromLayers(t, cfg, true, base, extra))
	refA, refB := "oci:"+dir+":a", "oci:"+dir+":b"

	e.ok("run", "--name", "uses-a", refA)
	e.ok("run", "--rm", refB)
	list := e.imageLs()
	if len(list) != 2 || list[0].Reference != refA || list[1].Reference != refB || list[0].Size <= 0 {
		t.Fatalf("image ls: %+v", list)
	}
	if table := e.ok("image", "ls"); !strings.HasPrefix(table, "REFERENCE") || !strings.Contains(table, refB) {
		t.Errorf("image ls table: %q", table)
	}
	if n := layerDirs(t, e); n != 2 {
		t.Errorf("%d layers, want 2 (one shared)", n)
	}

	// The exited container keeps A: refused, even by ID, unless forced.
	if r := e.caisson("image", "rm", refA); r.code != 125 || !strings.Contains(r.stderr, "stopped container") {
		t.Fatalf("image rm of an image an exited container uses: %s", r)
	}
	// Prune keeps A and removes B, and B's own layer, not the shared one.
	out := e.ok("image", "prune")
	if !strings.Contains(out, "Untagged: "+refB) || !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("image prune: %q", out)
	}
	if list := e.imageLs(); len(list) != 1 || list[0].Reference != refA {
		t.Errorf("after prune: %+v", list)
	}
	if n := layerDirs(t, e); n != 1 {
		t.Errorf("%d layers after prune, want the one A uses", n)
	}
	// A running container refuses even force.
	e.ok("run", "-d", "--name", "runs-a", refA, "sleep", "1000")
	if r := e.caisson("image", "rm", "-f", refA); r.code != 125 {
		t.Fatalf("image rm -f of an image a running container uses: %s", r)
	}
	e.ok("rm", "-f", "runs-a")
	// Forced, with only an exited container left, A goes; its layer stays
	// while that container has its root filesystem.
	if out := e.ok("image", "rm", "-f", list[0].ID[len("sha256:"):len("sha256:")+12]); !strings.Contains(out, "Deleted: "+list[0].ID) {
		t.Errorf("image rm -f by ID: %q", out)
	}
	if n := layerDirs(t, e); n != 1 {
		t.Errorf("%d layers, want the exited container's", n)
	}
	e.ok("rm", "uses-a")
	e.ok("image", "prune")
	if n := layerDirs(t, e); n != 0 {
		t.Errorf("%d layers after the last prune, want none", n)
	}
	if r := e.caisson("image", "rm", "nosuch"); r.code != 125 {
		t.Errorf("image rm nosuch: %s", r)
	}
}

// TestRunHostileImageFiles runs images whose /etc/passwd is what a hostile
// image can put there: run must refuse at once, not block or fill memory.
func TestRunHostileImageFiles(t *testing.T) {
	e := newEnv(t)
	base := imagetest.LayerTar(t, e.rootfs)
	for _, tc := range []struct {
		name string
		hdr  tar.Header
	}{
		{"fifo", tar.Header{Name: "etc/passwd", Typeflag: tar.TypeFifo, Mode: 0o644}},
		{"dev zero", tar.Header{Name: "etc/passwd", Typeflag: tar.TypeChar, Mode: 0o644, Devmajor: 1, Devminor: 5}},
		{"dev urandom", tar.Header{Name: "etc/group", Typeflag: tar.TypeChar, Mode: 0o644, Devmajor: 1, Devminor: 9}},
		{"directory", tar.Header{Name: "etc/passwd/", Typeflag: tar.TypeDir, Mode: 0o755}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			hdr := tc.hdr
			if err := tw.WriteHeader(&hdr); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "layout")
			imagetest.WriteLayout(t, dir, "x", imagetest.ImageFromLayers(t, imagetest.Config{Cmd: []string{"true"}}, true, base, buf.Bytes()))
			r := e.caisson("run", "--rm", "-u", "app", "oci:"+dir+":x")
			if r.code != 125 || !strings.Contains(r.stderr, "not a regular file") {
				t.Fatalf("run: %s", r)
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

// TestRunImageTooLarge refuses an image over --max-image-size, and leaves
// nothing of it in the cache.
func TestRunImageTooLarge(t *testing.T) {
	e := newEnv(t)
	big := craftTar(t, []tarEntry{{name: "zeros", body: strings.Repeat("\x00", 16<<20)}})
	dir := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, dir, "big", imagetest.ImageFromLayers(t, imagetest.Config{Cmd: []string{"true"}}, true,
		imagetest.LayerTar(t, e.rootfs), big))
	r := e.caisson("run", "--rm", "--max-image-size", "8m", "oci:"+dir+":big")
	if r.code != 125 || !strings.Contains(r.stderr, "8388608 bytes") {
		t.Fatalf("run over the limit: %s", r)
	}
	// Layers are unpacked topmost first: the big one was refused, and
	// nothing was left of it.
	if n := layerDirs(t, e); n != 0 {
		t.Errorf("%d layers in the cache after a refused image", n)
	}
	e.ok("run", "--rm", "--max-image-size", "32m", "oci:"+dir+":big")
}

// TestRunCancelledBySignal sends SIGTERM to a run stuck on a registry that
// never answers: the launch is cancelled, undone, and run exits 143.
func TestRunCancelledBySignal(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	var (
		once  sync.Once
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
			once.Do(func() { close(accepted) })
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	cmd := e.cmd("run", "--rm", l.Addr().String()+"/never/answers:latest")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	exited, waitErr := start(t, cmd)
	select {
	case <-accepted:
	case <-exited:
		t.Fatalf("run exited before it reached the registry: %v, stderr %q", *waitErr, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExited(t, exited, "run stuck on the registry ignored SIGTERM")
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Fatalf("run after SIGTERM: exit %d (%v), stderr %q; want 143", code, *waitErr, stderr.String())
	}
	if ps := e.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left: %q", ps)
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers")); err == nil {
		if left := e.leftovers(); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}
