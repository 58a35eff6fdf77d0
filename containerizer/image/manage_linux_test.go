//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image/imagetest"
	"github.com/caisson/caisson/internal/testutil"
)

// cachedLayers lists the diff IDs in the layer cache.
func cachedLayers(t *testing.T, s *Store) []string {
	t.Helper()
	out := []string{}
	for _, d := range layerDirs(t, s) {
		out = append(out, "sha256:"+filepath.Base(d))
	}
	slices.Sort(out)
	return out
}

func refs(list []ImageInfo) []string {
	out := []string{}
	for _, i := range list {
		out = append(out, i.Reference)
	}
	return out
}

func list(t *testing.T, s *Store) []ImageInfo {
	t.Helper()
	l, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func sorted(ss ...string) []string {
	out := append([]string{}, ss...)
	slices.Sort(out)
	return out
}

// TestRemoveImages walks image rm through shared layers, references,
// users, force and IDs.
func TestRemoveImages(t *testing.T) {
	testutil.RequiresRoot(t)
	shared := makeTar(t, ent{name: "shared", typ: tar.TypeReg, body: "shared"})
	onlyA := makeTar(t, ent{name: "a", typ: tar.TypeReg, body: "a"})
	onlyB := makeTar(t, ent{name: "b", typ: tar.TypeReg, body: "b"})
	dir := filepath.Join(t.TempDir(), "layout")
	cfg := imagetest.Config{Cmd: []string{"sh"}}
	imgA := imagetest.ImageFromLayers(t, cfg, true, shared, onlyA)
	imagetest.WriteLayout(t, dir, "a", imgA)
	imagetest.WriteLayout(t, dir, "a2", imgA) // a second reference to A
	imagetest.WriteLayout(t, dir, "b", imagetest.ImageFromLayers(t, cfg, true, shared, onlyB))
	refA, refA2, refB := "oci:"+dir+":a", "oci:"+dir+":a2", "oci:"+dir+":b"
	host := imagetest.Registry(t)
	refC := imagetest.Push(t, host, "test/c", testutil.BusyboxRootfs(t), cfg)

	s := newStore(t)
	ids := map[string]string{}
	dirs := map[string]string{}
	for _, r := range []string{refA, refA2, refB, refC} {
		dirs[r] = containerDir(t, s)
		rfs := provision(t, s, &containerizer.ProvisionRequest{ContainerID: "c-" + filepath.Base(dirs[r]), Image: r, Dir: dirs[r]})
		ids[r] = rfs.Digest
	}
	if ids[refA] != ids[refA2] {
		t.Fatalf("two references to one image have two IDs: %s, %s", ids[refA], ids[refA2])
	}
	// The REPO@DIGEST reference recorded beside C's tag is not listed.
	if diff := cmp.Diff(sorted(refA, refA2, refB, refC), refs(list(t, s))); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	for _, i := range list(t, s) {
		if i.Size <= 0 || i.ID != ids[i.Reference] || len(i.Layers) == 0 {
			t.Errorf("List entry %+v", i)
		}
	}
	ctx := context.Background()

	// Untagging one of two references needs no check: the image stays.
	rep, err := s.Remove(ctx, []string{refA2}, RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&RemoveReport{Untagged: []string{refA2}, Deleted: []string{}, Layers: []string{}}, rep); diff != "" {
		t.Errorf("rm of a second reference (-want +got):\n%s", diff)
	}

	// A's last reference: a container still holds a lease on it.
	if _, err := s.Remove(ctx, []string{refA}, RemoveOptions{Force: true}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("rm of an image a provisioned container uses: got %v, want api.ErrConflict", err)
	}
	release(t, s, dirs[refA])
	release(t, s, dirs[refA2])
	// The caller's records say an exited container uses A: refused without
	// force, removed with it; a running one refuses even force.
	exited := map[string][]ImageUser{ids[refA]: {{Container: "exited0000000000", Running: false}}}
	running := map[string][]ImageUser{ids[refA]: {{Container: "running000000000", Running: true}}}
	if _, err := s.Remove(ctx, []string{refA}, RemoveOptions{Users: exited}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("rm of an image an exited container uses: got %v, want api.ErrConflict", err)
	}
	if _, err := s.Remove(ctx, []string{refA}, RemoveOptions{Users: running, Force: true}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("rm -f of an image a running container uses: got %v, want api.ErrConflict", err)
	}
	before := cachedLayers(t, s)
	rep, err = s.Remove(ctx, []string{refA}, RemoveOptions{Users: exited, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	// The shared layer stays for B; A's own goes.
	want := &RemoveReport{Untagged: []string{refA}, Deleted: []string{ids[refA]}, Layers: []string{digestOf(onlyA).String()}}
	if diff := cmp.Diff(want, rep, cmpReport); diff != "" {
		t.Errorf("rm -f (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(without(before, digestOf(onlyA).String()), cachedLayers(t, s)); diff != "" {
		t.Errorf("layers after rm (-want +got):\n%s", diff)
	}

	// By ID prefix, once B's container is gone; the shared layer goes too.
	release(t, s, dirs[refB])
	short := strings.TrimPrefix(ids[refB], "sha256:")[:12]
	if rep, err = s.Remove(ctx, []string{short}, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	want = &RemoveReport{Untagged: []string{refB}, Deleted: []string{ids[refB]},
		Layers: sorted(digestOf(shared).String(), digestOf(onlyB).String())}
	if diff := cmp.Diff(want, rep, cmpReport); diff != "" {
		t.Errorf("rm by ID (-want +got):\n%s", diff)
	}

	// C's tag takes its REPO@DIGEST reference along.
	release(t, s, dirs[refC])
	if rep, err = s.Remove(ctx, []string{"docker://" + refC}, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(rep.Untagged) != 2 || len(rep.Deleted) != 1 || len(rep.Layers) != 1 {
		t.Errorf("rm of a registry tag: %+v; want the tag, its digest reference, the image and its layer", rep)
	}
	if l := list(t, s); len(l) != 0 {
		t.Errorf("images left: %+v", l)
	}
	if c := cachedLayers(t, s); len(c) != 0 {
		t.Errorf("layers left: %v", c)
	}

	for _, name := range []string{refA, "nosuch", "0123456789ab", "sha256:", ""} {
		if _, err := s.Remove(ctx, []string{name}, RemoveOptions{}); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("rm %q: got %v, want api.ErrNotFound", name, err)
		}
	}
}

// cmpReport compares reports regardless of order, and without the bytes
// reclaimed, which depend on the filesystem.
var cmpReport = cmp.Options{
	cmpopts.SortSlices(func(a, b string) bool { return a < b }),
	cmpopts.IgnoreFields(RemoveReport{}, "Reclaimed"),
}

func without(ss []string, x string) []string {
	return slices.DeleteFunc(slices.Clone(ss), func(s string) bool { return s == x })
}

func TestPrune(t *testing.T) {
	testutil.RequiresRoot(t)
	used := makeTar(t, ent{name: "used", typ: tar.TypeReg, body: "used"})
	unused := makeTar(t, ent{name: "unused", typ: tar.TypeReg, body: "unused"})
	exitedL := makeTar(t, ent{name: "exited", typ: tar.TypeReg, body: "exited"})
	refUsed, refUnused, refExited := layoutOf(t, used), layoutOf(t, used, unused), layoutOf(t, exitedL)
	s := newStore(t)
	ctx := context.Background()
	dirUsed := containerDir(t, s)
	provision(t, s, &containerizer.ProvisionRequest{ContainerID: "used", Image: refUsed, Dir: dirUsed})
	d := containerDir(t, s)
	provision(t, s, &containerizer.ProvisionRequest{Image: refUnused, Dir: d})
	release(t, s, d)
	d = containerDir(t, s)
	exitedID := provision(t, s, &containerizer.ProvisionRequest{Image: refExited, Dir: d}).Digest
	release(t, s, d)

	// Debris: a layer no image names, a stale lease, a crash's tmp dir.
	orphan := makeTar(t, ent{name: "orphan", typ: tar.TypeReg, body: "orphan"})
	if _, _, err := s.ensureLayer(ctx, layerSource{diffID: digestOf(orphan), open: opener(orphan)}, -1); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(t.TempDir(), "gone")
	p := &provisioning{dir: gone}
	if err := s.writeLease(p, "gone", &source{ref: reference{kind: kindOCI, path: gone}, configID: digestOf([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(s.root, "tmp", "layer-debris"), 0o700))

	rep, err := s.Prune(ctx, RemoveOptions{Users: map[string][]ImageUser{exitedID: {{Container: "exited", Running: false}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := &RemoveReport{
		Untagged: []string{refUnused}, Deleted: []string{list0ID(t, refUnused)},
		Layers: sorted(digestOf(unused).String(), digestOf(orphan).String()),
	}
	if diff := cmp.Diff(want, rep, cmpReport); diff != "" {
		t.Errorf("Prune (-want +got):\n%s", diff)
	}
	if rep.Reclaimed <= 0 {
		t.Errorf("Prune reclaimed %d bytes", rep.Reclaimed)
	}
	if diff := cmp.Diff(sorted(refExited, refUsed), refs(list(t, s))); diff != "" {
		t.Errorf("images after prune (-want +got):\n%s", diff)
	}
	for _, dir := range []string{"tmp", "leases"} {
		entries, _ := os.ReadDir(filepath.Join(s.root, dir))
		if dir == "leases" && len(entries) != 1 || dir == "tmp" && len(entries) != 0 {
			t.Errorf("%s after prune: %v", dir, entries)
		}
	}
	// Once nothing uses them, everything goes.
	release(t, s, dirUsed)
	if _, err := s.Prune(ctx, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, c := list(t, s), cachedLayers(t, s); len(l) != 0 || len(c) != 0 {
		t.Errorf("after the last prune: images %v, layers %v", refs(l), c)
	}
	if metas, _ := os.ReadDir(filepath.Join(s.root, "layers", "meta")); len(metas) != 0 {
		t.Errorf("size records left: %v", metas)
	}
}

// list0ID is the ID of the image a layout reference names.
func list0ID(t *testing.T, ref string) string {
	t.Helper()
	r, err := parseReference(ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := parsePlatform("")
	src, err := resolveLayout(context.Background(), r, want)
	if err != nil {
		t.Fatal(err)
	}
	return src.configID.String()
}

// TestPruneWaitsForProvision checks the lock between a launch and prune:
// while a layer is being unpacked, prune cannot start; once the container
// holds its lease, prune keeps its image and layers.
func TestPruneWaitsForProvision(t *testing.T) {
	testutil.RequiresRoot(t)
	layer := makeTar(t, ent{name: "f", typ: tar.TypeReg, body: "f"})
	ref := layoutOf(t, layer)
	s := newStore(t)
	unpacking, proceed := make(chan struct{}), make(chan struct{})
	s.unpackHook = func(v1.Hash) error {
		close(unpacking)
		<-proceed
		return nil
	}
	dir := containerDir(t, s)
	var (
		wg      sync.WaitGroup
		provErr error
	)
	wg.Go(func() {
		_, provErr = s.Provision(context.Background(), &containerizer.ProvisionRequest{ContainerID: "c", Image: ref, Dir: dir})
	})
	<-unpacking
	// Prune and rm wait for the lock; with a done context they give up at
	// once, having removed nothing.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Prune(done, RemoveOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Prune during an unpack: got %v, want context.Canceled", err)
	}
	if _, err := s.Remove(done, []string{ref}, RemoveOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove during an unpack: got %v, want context.Canceled", err)
	}
	// List shares the lock with launches: it needs no wait.
	if _, err := s.List(done); err != nil {
		t.Errorf("List during an unpack: %v", err)
	}
	close(proceed)
	wg.Wait()
	if provErr != nil {
		t.Fatal(provErr)
	}
	s.unpackHook = nil
	if _, err := s.Prune(context.Background(), RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := cachedLayers(t, s); len(c) != 1 || !exists(filepath.Join(dir, "rootfs", "f")) {
		t.Errorf("prune removed the layer of a running container: cache %v", c)
	}
	release(t, s, dir)
	if _, err := s.Prune(context.Background(), RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := cachedLayers(t, s); len(c) != 0 {
		t.Errorf("layers after the container went: %v", c)
	}
}

// TestPruneConcurrentProvisions races provisions of images sharing a layer
// against prunes, from two stores on one root as two processes would: every
// provision must get a whole root filesystem.
func TestPruneConcurrentProvisions(t *testing.T) {
	testutil.RequiresRoot(t)
	shared := makeTar(t, ent{name: "shared", typ: tar.TypeReg, body: "shared"})
	var refsList []string
	for i := range 3 {
		own := makeTar(t, ent{name: "own", typ: tar.TypeReg, body: strings.Repeat("o", i+1)})
		refsList = append(refsList, layoutOf(t, shared, own))
	}
	root := filepath.Join(t.TempDir(), "images")
	var stores []*Store
	for range 2 {
		s, err := New(Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	const rounds = 4
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, ref := range refsList {
		wg.Go(func() {
			s := stores[i%2]
			for range rounds {
				dir := containerDir(t, s)
				rfs, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{ContainerID: "c", Image: ref, Dir: dir})
				if err != nil {
					errs <- err
					return
				}
				for _, f := range []string{"shared", "own"} {
					if !exists(filepath.Join(rfs.Path, f)) {
						errs <- errors.New("a provisioned root filesystem misses " + f)
					}
				}
				if err := s.Release(context.Background(), dir); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds * 2 {
			if _, err := stores[1].Prune(context.Background(), RemoveOptions{}); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func opener(data []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// TestPruneKeepsMountedLayers: a container provisioned by a Caisson that
// wrote no lease and no record (an older one) still has its layers
// mounted; prune must see that and keep them.
func TestPruneKeepsMountedLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	layer := makeTar(t, ent{name: "f", typ: tar.TypeReg, body: "f"})
	s := newStore(t)
	dir := containerDir(t, s)
	rfs := provision(t, s, &containerizer.ProvisionRequest{Image: layoutOf(t, layer), Dir: dir})
	must(t, os.Remove(s.leasePath(dir)))
	must(t, os.Remove(s.indexPath()))
	if _, err := s.Prune(context.Background(), RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := cachedLayers(t, s); len(c) != 1 || !exists(filepath.Join(rfs.Path, "f")) {
		t.Errorf("prune removed a mounted layer: cache %v", c)
	}
	release(t, s, dir)
	if _, err := s.Prune(context.Background(), RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := cachedLayers(t, s); len(c) != 0 {
		t.Errorf("layers after the container went: %v", c)
	}
}
