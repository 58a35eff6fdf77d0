package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/mountinfo"
	"github.com/caisson/caisson/internal/safefile"
)

// Images and layers are kept by marking, never by counting: a layer stays
// while an image in images.json lists it or a container's lease does, so
// layers that images share need no reference counts that a crash could
// leave wrong. A lease (leases/<hash of the container directory>.json) is
// written by Provision, under the store's lock, before the overlay is
// mounted, and removed by Release; one whose container directory has no
// rootfs left is stale, and prune removes it.
//
// locks/store.lock orders the two sides: Provision holds it shared from
// resolving the image to writing the lease, Remove and Prune hold it
// exclusively. So a layer is never removed between being unpacked (or found
// in the cache) and being named by a lease.

// lockStore takes the store's lock, shared or exclusive, waiting as long
// as ctx allows.
func (s *Store) lockStore(ctx context.Context, exclusive bool) (func(), error) {
	unlock, err := lockFile(ctx, filepath.Join(s.root, "locks", "store.lock"), exclusive)
	if err != nil {
		return nil, fmt.Errorf("lock image store: %w", err)
	}
	return unlock, nil
}

// lease records that a container uses an image's layers.
type lease struct {
	Dir       string   `json:"dir"`
	Container string   `json:"container,omitempty"`
	Image     string   `json:"image"`
	Reference string   `json:"reference"`
	Layers    []string `json:"layers"`
}

// leasePath is the lease of the container whose directory is dir.
func (s *Store) leasePath(dir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return filepath.Join(s.root, "leases", hex.EncodeToString(sum[:16])+".json")
}

// writeLease records that the container being provisioned uses src's
// layers; undoing the provision removes it.
func (s *Store) writeLease(p *provisioning, container string, src *source) error {
	l := lease{Dir: p.dir, Container: container, Image: src.configID.String(), Reference: src.ref.String()}
	for _, ls := range src.layers {
		l.Layers = append(l.Layers, ls.diffID.String())
	}
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	path := s.leasePath(p.dir)
	if err := atomicfile.Write(path, data, 0o600, false); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	p.created = append(p.created, path)
	return nil
}

// leases returns the live leases and the paths of the stale ones.
func (s *Store) leases() (live []lease, stale []string, err error) {
	dir := filepath.Join(s.root, "leases")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read leases: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		data, err := safefile.ReadFile(p, 1<<20)
		var l lease
		if err != nil || json.Unmarshal(data, &l) != nil || l.Dir == "" || s.leasePath(l.Dir) != p {
			stale = append(stale, p)
			continue
		}
		if _, err := os.Lstat(filepath.Join(l.Dir, rootfsName)); errors.Is(err, fs.ErrNotExist) {
			stale = append(stale, p)
			continue
		}
		live = append(live, l)
	}
	return live, stale, nil
}

// ImageInfo is one reference to an image in the store, as image ls shows
// it.
type ImageInfo struct {
	// Reference is the canonical reference, as Rootfs.Image carries it.
	Reference string `json:"reference"`
	Platform  string `json:"platform"`
	// ID is the config digest, as Rootfs.Digest carries it.
	ID string `json:"id"`
	// Manifest is the manifest digest; empty for a docker-archive image.
	Manifest string    `json:"manifest,omitempty"`
	Created  time.Time `json:"created,omitzero"`
	// Size is the sum of the image's distinct layers' sizes in the cache
	// (uncompressed; a sparse file counts its apparent size).
	Size   int64    `json:"size"`
	Layers []string `json:"layers"`
}

// List returns the images in the store, one per reference and platform,
// sorted by reference. A REPO@DIGEST reference recorded beside a tag is
// left out: it goes with the tag. It holds the store's lock shared, so it
// runs beside launches.
func (s *Store) List(ctx context.Context) ([]ImageInfo, error) {
	unlock, err := s.lockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	tagged := map[string]bool{} // image IDs with a reference other than a digest
	for ref, platforms := range idx.Images {
		for _, e := range platforms {
			if !isDigestRef(ref) {
				tagged[e.Config] = true
			}
		}
	}
	out := []ImageInfo{}
	for ref, platforms := range idx.Images {
		for platform, e := range platforms {
			if isDigestRef(ref) && tagged[e.Config] {
				continue
			}
			info := ImageInfo{Reference: ref, Platform: platform, ID: e.Config, Manifest: e.Manifest, Layers: []string{}}
			if cfg, err := v1.ParseConfigFile(bytes.NewReader(e.RawConfig)); err == nil {
				info.Created = cfg.Created.Time
				seen := map[v1.Hash]bool{}
				for _, d := range cfg.RootFS.DiffIDs {
					info.Layers = append(info.Layers, d.String())
					if seen[d] || !s.layerCached(d) {
						continue
					}
					seen[d] = true
					if size, err := s.layerSize(d); err == nil {
						info.Size += size
					}
				}
			}
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b ImageInfo) int {
		return strings.Compare(a.Reference+" "+a.Platform, b.Reference+" "+b.Platform)
	})
	return out, nil
}

// isDigestRef reports whether a key of images.json is a REPO@DIGEST
// reference.
func isDigestRef(ref string) bool {
	return !strings.HasPrefix(ref, prefixOCI) && !strings.HasPrefix(ref, prefixDockerArchive) && strings.Contains(ref, "@")
}

// ImageUser is a container that uses an image.
type ImageUser struct {
	Container string
	// Running is false for a container that has exited: only then may
	// its image be removed by force.
	Running bool
}

// RemoveOptions says how Remove and Prune treat images in use.
type RemoveOptions struct {
	// Force removes an image that only exited containers use, as
	// `docker rmi -f` does. Their layers stay while their root
	// filesystems do.
	Force bool
	// Users are the containers that use each image, by image ID (config
	// digest): the caller's records, exited containers included. A
	// container that holds a lease on an image and is not listed here (one
	// being launched) counts as running.
	Users map[string][]ImageUser
}

// RemoveReport says what Remove or Prune removed.
type RemoveReport struct {
	// Untagged are the references removed.
	Untagged []string `json:"untagged"`
	// Deleted are the images (IDs) that no reference names any more.
	Deleted []string `json:"deleted"`
	// Layers are the layers (diff IDs) removed from the cache, and
	// Reclaimed their size.
	Layers    []string `json:"layers"`
	Reclaimed int64    `json:"reclaimed"`
}

func newReport() *RemoveReport {
	return &RemoveReport{Untagged: []string{}, Deleted: []string{}, Layers: []string{}}
}

// Remove removes images by reference (as run takes them) or by ID (a
// config digest, or a unique prefix of its hex), with the layers that no
// other image and no container uses. Removing a reference of an image that
// has others only untags it; removing an image's last reference removes the
// image, which is refused, with an error wrapping api.ErrConflict, while a
// container uses it, unless opts.Force and every such container has exited.
// Each name is handled on its own: the error joins the failures, and the
// report says what was done.
func (s *Store) Remove(ctx context.Context, names []string, opts RemoveOptions) (*RemoveReport, error) {
	unlock, err := s.lockStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	live, _, err := s.leases()
	if err != nil {
		return nil, err
	}
	users := mergeUsers(opts.Users, live)
	rep := newReport()
	var (
		errs   []error
		layers []string // the layers of the images removed
	)
	err = s.updateIndex(ctx, func(idx *imageIndex) error {
		for _, n := range names {
			if err := s.removeName(idx, n, users, opts.Force, rep, &layers); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n, err))
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if err := s.collectLayers(layers, live, rep); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// removeName removes one name's references from idx, or refuses, and
// adds the layers of the images it removes to layers.
func (s *Store) removeName(idx *imageIndex, n string, users map[string][]ImageUser, force bool, rep *RemoveReport, layers *[]string) error {
	refs, err := s.findRefs(idx, n)
	if err != nil {
		return err
	}
	drop := map[string]bool{}
	ids := map[string]bool{}
	for _, r := range refs {
		drop[r] = true
		for _, e := range idx.Images[r] {
			ids[e.Config] = true
		}
	}
	// An image left with only REPO@DIGEST references when a tag goes loses
	// them too: they were recorded beside the tag.
	droppedTag := slices.ContainsFunc(refs, func(r string) bool { return !isDigestRef(r) })
	var deleted []string
	for id := range ids {
		var digestRefs []string
		kept := false
		for ref, platforms := range idx.Images {
			switch {
			case drop[ref] || !hasImage(platforms, id):
			case isDigestRef(ref):
				digestRefs = append(digestRefs, ref)
			default:
				kept = true
			}
		}
		switch {
		case kept:
		case droppedTag:
			for _, r := range digestRefs {
				drop[r] = true
			}
			deleted = append(deleted, id)
		case len(digestRefs) == 0:
			deleted = append(deleted, id)
		}
	}
	slices.Sort(deleted)
	for _, id := range deleted {
		if err := checkUnused(id, users[id], force); err != nil {
			return err
		}
	}
	for _, id := range deleted {
		for _, platforms := range idx.Images {
			for _, e := range platforms {
				if e.Config == id {
					*layers = append(*layers, diffIDsOf(e.RawConfig)...)
				}
			}
		}
	}
	var untagged []string
	for r := range drop {
		delete(idx.Images, r)
		untagged = append(untagged, r)
	}
	slices.Sort(untagged)
	rep.Untagged = append(rep.Untagged, untagged...)
	rep.Deleted = append(rep.Deleted, deleted...)
	return nil
}

// diffIDsOf returns the diff IDs a recorded config lists.
func diffIDsOf(rawConfig []byte) []string {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range cfg.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

// findRefs returns the references a name stands for: itself, when it is a
// recorded reference, or every reference to the image it is the ID of.
func (s *Store) findRefs(idx *imageIndex, n string) ([]string, error) {
	if ref, err := parseReference(n, s.insecure); err == nil {
		if _, ok := idx.Images[ref.String()]; ok {
			return []string{ref.String()}, nil
		}
	}
	hexPart := strings.TrimPrefix(n, "sha256:")
	if hexPart == "" || len(hexPart) > 64 || !isLowerHex(hexPart) {
		return nil, fmt.Errorf("no such image: %w", api.ErrNotFound)
	}
	var ids []string
	for _, platforms := range idx.Images {
		for _, e := range platforms {
			if strings.HasPrefix(e.Config, "sha256:"+hexPart) && !slices.Contains(ids, e.Config) {
				ids = append(ids, e.Config)
			}
		}
	}
	switch len(ids) {
	case 0:
		return nil, fmt.Errorf("no such image: %w", api.ErrNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("the prefix names %d images: %w", len(ids), api.ErrInvalid)
	}
	var refs []string
	for ref, platforms := range idx.Images {
		if hasImage(platforms, ids[0]) {
			refs = append(refs, ref)
		}
	}
	slices.Sort(refs)
	return refs, nil
}

func hasImage(platforms map[string]indexEntry, id string) bool {
	for _, e := range platforms {
		if e.Config == id {
			return true
		}
	}
	return false
}

// checkUnused refuses to remove an image that containers use: with force,
// only running ones (or ones being launched) stop it.
func checkUnused(id string, users []ImageUser, force bool) error {
	if len(users) == 0 {
		return nil
	}
	var running, exited []string
	for _, u := range users {
		if u.Running {
			running = append(running, short(u.Container))
		} else {
			exited = append(exited, short(u.Container))
		}
	}
	switch {
	case len(running) > 0:
		return fmt.Errorf("image %s is used by running container %s; it cannot be removed, even by force: %w",
			short(id), strings.Join(running, ", "), api.ErrConflict)
	case !force:
		return fmt.Errorf("image %s is used by stopped container %s; remove the container first, or force: %w",
			short(id), strings.Join(exited, ", "), api.ErrConflict)
	}
	return nil
}

// short is an ID's first 12 hex digits, as Docker shows it.
func short(id string) string {
	_, h, ok := strings.Cut(id, ":")
	if !ok {
		h = id
	}
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(unknown)"
	}
	return h
}

// mergeUsers adds to the caller's users the containers that hold leases
// and that the caller does not know: they count as running.
func mergeUsers(known map[string][]ImageUser, live []lease) map[string][]ImageUser {
	out := map[string][]ImageUser{}
	for id, us := range known {
		out[id] = append(out[id], us...)
	}
	for _, l := range live {
		if !slices.ContainsFunc(out[l.Image], func(u ImageUser) bool { return u.Container != "" && u.Container == l.Container }) {
			out[l.Image] = append(out[l.Image], ImageUser{Container: l.Container, Running: true})
		}
	}
	return out
}

// Prune removes every image that no container uses (opts.Users and the
// leases), every layer that no image left and no container uses, stale
// leases, and what crashes left in tmp/.
func (s *Store) Prune(ctx context.Context, opts RemoveOptions) (*RemoveReport, error) {
	unlock, err := s.lockStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	live, stale, err := s.leases()
	if err != nil {
		return nil, err
	}
	users := mergeUsers(opts.Users, live)
	rep := newReport()
	err = s.updateIndex(ctx, func(idx *imageIndex) error {
		deleted := map[string]bool{}
		for ref, platforms := range idx.Images {
			for platform, e := range platforms {
				if len(users[e.Config]) > 0 {
					continue
				}
				delete(platforms, platform)
				deleted[e.Config] = true
			}
			if len(platforms) == 0 {
				delete(idx.Images, ref)
				rep.Untagged = append(rep.Untagged, ref)
			}
		}
		for id := range deleted {
			rep.Deleted = append(rep.Deleted, id)
		}
		slices.Sort(rep.Untagged)
		slices.Sort(rep.Deleted)
		return nil
	})
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// Under the exclusive lock nobody unpacks: all of tmp/ is debris.
	if entries, err := os.ReadDir(filepath.Join(s.root, "tmp")); err == nil {
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(s.root, "tmp", e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := s.collectLayers(nil, live, rep); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// collectLayers removes the cached layers that no image in images.json and
// no live lease names: among candidates, or, when candidates is nil, all of
// them. The caller holds the store's lock exclusively.
func (s *Store) collectLayers(candidates []string, live []lease, rep *RemoveReport) error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, platforms := range idx.Images {
		for _, e := range platforms {
			for _, d := range diffIDsOf(e.RawConfig) {
				keep[d] = true
			}
		}
	}
	for _, l := range live {
		for _, d := range l.Layers {
			keep[d] = true
		}
	}
	// A layer an overlay still has as a lower directory stays, lease or
	// not: a container provisioned before leases existed has none.
	mounted, err := s.mountedLayers()
	if err != nil {
		return err
	}
	for d := range mounted {
		keep[d] = true
	}
	if candidates == nil {
		entries, err := os.ReadDir(filepath.Join(s.root, "layers", "sha256"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			candidates = append(candidates, "sha256:"+e.Name())
		}
		// A size record left without its layer goes too.
		metas, err := os.ReadDir(filepath.Join(s.root, "layers", "meta"))
		if err != nil {
			return err
		}
		for _, m := range metas {
			candidates = append(candidates, "sha256:"+strings.TrimSuffix(m.Name(), ".json"))
		}
	}
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	var errs []error
	for _, d := range candidates {
		if keep[d] {
			continue
		}
		h, err := v1.NewHash(d)
		if err != nil || validDiffID(h) != nil {
			continue
		}
		size, removed, err := s.removeLayer(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if removed {
			rep.Layers = append(rep.Layers, d)
			rep.Reclaimed += size
		}
	}
	return errors.Join(errs...)
}

// mountedLayers returns the cached layers that a mounted overlay names as a
// lower directory. A lower directory named by a file descriptor (an image
// of very many layers) cannot be told; leases cover those.
func (s *Store) mountedLayers() (map[string]bool, error) {
	out := map[string]bool{}
	ms, err := mountinfo.Read(0)
	if err != nil {
		if runtime.GOOS != "linux" {
			return out, nil
		}
		return nil, err
	}
	prefix := filepath.Join(s.root, "layers", "sha256") + "/"
	for _, m := range ms {
		if m.FSType != "overlay" {
			continue
		}
		opts := mountinfo.Unescape(m.SuperOpts)
		for {
			i := strings.Index(opts, prefix)
			if i < 0 {
				break
			}
			opts = opts[i+len(prefix):]
			if len(opts) >= 64 && isLowerHex(opts[:64]) {
				out["sha256:"+opts[:64]] = true
			}
		}
	}
	return out, nil
}

// removeLayer removes a layer from the cache: renamed out of layers/ first,
// so that a crash never leaves half a layer where a provision would take it
// whole, then removed, with its size record and its lock file. It returns
// the layer's size and whether it was there.
func (s *Store) removeLayer(diffID v1.Hash) (int64, bool, error) {
	var size int64
	if s.layerCached(diffID) {
		if n, err := s.layerSize(diffID); err == nil {
			size = n
		}
		trash, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "rm-"+diffID.Hex+"-")
		if err != nil {
			return 0, false, fmt.Errorf("remove layer %s: %w", diffID, err)
		}
		gone := filepath.Join(trash, "layer")
		if err := os.Rename(s.layerDir(diffID), gone); err != nil {
			_ = os.Remove(trash)
			return 0, false, fmt.Errorf("remove layer %s: %w", diffID, err)
		}
		_ = atomicfile.SyncDir(filepath.Dir(s.layerDir(diffID))) // failures only cost durability
		if err := os.RemoveAll(trash); err != nil {
			return size, true, fmt.Errorf("remove layer %s: %w", diffID, err)
		}
	} else if _, err := os.Lstat(s.layerMetaPath(diffID)); err != nil {
		return 0, false, nil
	}
	for _, p := range []string{s.layerMetaPath(diffID), s.layerLockPath(diffID)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return size, true, fmt.Errorf("remove layer %s: %w", diffID, err)
		}
	}
	return size, true, nil
}
