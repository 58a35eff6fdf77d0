package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/internal/flock"
)

var (
	_ containerizer.Provisioner = (*Store)(nil)
	_ containerizer.Unmounter   = (*Store)(nil)
)

// Names of what Provision makes under a container's directory.
const (
	rootfsName  = "rootfs"
	upperName   = "upper"
	workName    = "work"
	sandboxName = "sandbox"
)

// SandboxPath is where a container with no image sees its writable sandbox.
const SandboxPath = "/mnt/sandbox"

// Config configures a Store.
type Config struct {
	// Root is the cache directory (for example <workdir>/images): the
	// unpacked layers and images.json. It is made 0700 if missing.
	Root string
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
	// InsecureRegistries are registries (host[:port]) reached over plain
	// http. localhost, 127.0.0.1 and private (RFC 1918) addresses always are.
	InsecureRegistries []string
	// HideHostPaths are host directories (Caisson's own state) that a
	// container with no image must not see; Root is always hidden.
	HideHostPaths []string
	// Transport is the HTTP transport for registries; nil means
	// go-containerregistry's default, which honours the proxy variables.
	Transport http.RoundTripper
	// MaxImageSize limits an image's uncompressed size, the sum of its
	// distinct layers' sizes (see extractLayer: a sparse file counts its
	// apparent size). Zero means DefaultMaxImageSize, negative no limit.
	MaxImageSize int64
}

// Store provisions root filesystems and caches image layers under its root.
// It is safe for concurrent use, and several processes may share a root.
type Store struct {
	root      string
	log       *slog.Logger
	insecure  map[string]bool
	hide      []string
	transport http.RoundTripper
	// maxImageSize is the limit on an image's size; negative: none.
	maxImageSize int64
	// hostRoot is the host filesystem that a container with no image sees:
	// "/" except in tests.
	hostRoot string
	// extractions counts the layers this Store has unpacked, for tests.
	extractions atomic.Int64
	// unpackHook, when set (by tests), runs as a layer starts unpacking;
	// an error it returns is the unpack's.
	unpackHook func(diffID v1.Hash) error
}

// New makes a Store with its cache under cfg.Root.
func New(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("image store: no root directory: %w", api.ErrInvalid)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		root:         root,
		log:          log.With("component", "image"),
		insecure:     map[string]bool{},
		transport:    cfg.Transport,
		hostRoot:     "/",
		maxImageSize: cfg.MaxImageSize,
	}
	if s.maxImageSize == 0 {
		s.maxImageSize = DefaultMaxImageSize
	}
	for _, r := range cfg.InsecureRegistries {
		s.insecure[r] = true
	}
	for _, p := range cfg.HideHostPaths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("image store: hidden path %q is not absolute: %w", p, api.ErrInvalid)
		}
		s.hide = append(s.hide, filepath.Clean(p))
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, d := range []string{"layers", "layers/sha256", "layers/meta", "tmp", "locks", "leases"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// Layers hold set-id binaries and device nodes: only root may reach
	// them, whatever the mode of a root directory someone else made.
	if err := os.Chmod(filepath.Join(root, "layers"), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	return s, nil
}

// Provision makes the container's root filesystem under req.Dir: the
// host's (neither Image nor Rootfs), an overlay over a directory (Rootfs),
// or an overlay over an image's layers (Image). On error nothing is left
// mounted and what it made is removed.
func (s *Store) Provision(ctx context.Context, req *containerizer.ProvisionRequest) (*containerizer.Rootfs, error) {
	if req == nil {
		return nil, fmt.Errorf("provision: no request: %w", api.ErrInvalid)
	}
	if req.Dir == "" || !filepath.IsAbs(req.Dir) {
		return nil, fmt.Errorf("provision: container directory %q is not an absolute path: %w", req.Dir, api.ErrInvalid)
	}
	if req.Image != "" && req.Rootfs != "" {
		return nil, fmt.Errorf("provision: an image and a root directory are exclusive: %w", api.ErrInvalid)
	}
	dir := filepath.Clean(req.Dir)
	log := s.log.With("container", req.ContainerID)

	p := &provisioning{dir: dir, log: log}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	for _, n := range []string{rootfsName, upperName, workName} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return nil, fmt.Errorf("provision: %s already exists; release it first: %w", filepath.Join(dir, n), api.ErrAlreadyExists)
		}
	}

	var (
		rfs *containerizer.Rootfs
		err error
	)
	switch {
	case req.Image != "":
		rfs, err = s.provisionImage(ctx, p, req)
	case req.Rootfs != "":
		rfs, err = s.provisionDir(ctx, p, req)
	default:
		rfs, err = s.provisionHost(ctx, p)
	}
	if err != nil {
		p.undo(ctx)
		return nil, err
	}
	log.Debug("provisioned", "rootfs", rfs.Path, "image", rfs.Image)
	return rfs, nil
}

// provisioning tracks what one Provision call made, to undo it on error.
type provisioning struct {
	dir     string
	log     *slog.Logger
	created []string // in creation order
	mounted []string
}

func (p *provisioning) path(name string) string { return filepath.Join(p.dir, name) }

// mkdir makes a directory that must not exist yet.
func (p *provisioning) mkdir(path string, mode fs.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; release it first: %w", path, api.ErrAlreadyExists)
		}
		return err
	}
	p.created = append(p.created, path)
	return os.Chmod(path, mode)
}

// mkdirMode makes a directory with exactly mode: Mkdir's is filtered by
// the umask, and a service's umask (0077) must not make a container's
// directories unreachable to its users.
func mkdirMode(path string, mode fs.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func (p *provisioning) mountOverlay(lowers []string) error {
	target := p.path(rootfsName)
	if err := mountOverlay(lowers, p.path(upperName), p.path(workName), target); err != nil {
		return err
	}
	p.mounted = append(p.mounted, target)
	return nil
}

// undo unmounts and removes what the call made. Errors are logged: the
// caller is already returning the error that made it undo.
func (p *provisioning) undo(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for _, m := range slices.Backward(p.mounted) {
		if err := unmountUnder(ctx, m); err != nil {
			p.log.Warn("undoing a failed provision", "error", err)
			return // removing a mounted tree could reach into it
		}
	}
	for _, c := range slices.Backward(p.created) {
		if err := os.RemoveAll(c); err != nil {
			p.log.Warn("undoing a failed provision", "error", err)
		}
	}
}

// provisionDir mounts an overlay over the user's directory, so the
// container's writes land in upper and the directory is never modified.
func (s *Store) provisionDir(_ context.Context, p *provisioning, req *containerizer.ProvisionRequest) (*containerizer.Rootfs, error) {
	lower, err := checkRootfsDir(req.Rootfs, p.dir)
	if err != nil {
		return nil, err
	}
	if err := s.overlay(p, []string{lower}); err != nil {
		return nil, err
	}
	return &containerizer.Rootfs{Path: p.path(rootfsName)}, nil
}

// checkRootfsDir canonicalises a user's root directory and refuses what
// cannot be one.
func checkRootfsDir(dir, containerDir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("root directory %q: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("root directory %q: %w", dir, notFound(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("root directory %q: %w", dir, notFound(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("root directory %q is not a directory: %w", dir, api.ErrInvalid)
	}
	if real == "/" {
		return "", fmt.Errorf("root directory %q is the host's root; run with no image and no root directory to see the host: %w", dir, api.ErrInvalid)
	}
	if realDir, err := filepath.EvalSymlinks(containerDir); err == nil && (within(realDir, real) || within(real, realDir)) {
		return "", fmt.Errorf("root directory %q overlaps the container's directory %s: %w", dir, containerDir, api.ErrInvalid)
	}
	return real, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// overlay makes upper, work and rootfs and mounts the overlay.
func (s *Store) overlay(p *provisioning, lowers []string) error {
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{upperName, 0o755}, {workName, 0o700}, {rootfsName, 0o755}} {
		if err := p.mkdir(p.path(d.name), d.mode); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	return p.mountOverlay(lowers)
}

// provisionImage resolves the image, unpacks the layers not in the cache
// and mounts the overlay of its layers. It holds the store's lock shared
// until the container's lease names the layers, so that image rm and prune,
// which hold it exclusively, never remove a layer that a provision is about
// to use.
func (s *Store) provisionImage(ctx context.Context, p *provisioning, req *containerizer.ProvisionRequest) (*containerizer.Rootfs, error) {
	ref, err := parseReference(req.Image, s.insecure)
	if err != nil {
		return nil, err
	}
	want, err := parsePlatform(req.Platform)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	src, err := s.resolve(ctx, ref, want)
	if err != nil {
		return nil, err
	}
	lowers, err := s.layers(ctx, src)
	if err != nil {
		return nil, err
	}
	if err := s.writeLease(p, req.ContainerID, src); err != nil {
		return nil, err
	}
	if err := s.overlay(p, lowers); err != nil {
		return nil, err
	}
	if !src.fromIndex() {
		if err := s.record(ctx, src); err != nil {
			s.log.Warn("recording the image; image ls will not show it", "image", ref.String(), "error", err)
		}
	}
	c := src.config.Config
	return &containerizer.Rootfs{
		Path: p.path(rootfsName),
		Config: containerizer.ImageConfig{
			Entrypoint: c.Entrypoint,
			Cmd:        c.Cmd,
			Env:        c.Env,
			WorkingDir: c.WorkingDir,
			User:       c.User,
		},
		Image:  ref.String(),
		Digest: src.configID.String(),
	}, nil
}

// fromIndex reports whether the source was read from images.json.
func (src *source) fromIndex() bool {
	return len(src.layers) > 0 && src.layers[0].open == nil
}

// distinctLayers returns the layers of src topmost first, each once, at its
// topmost place: overlayfs refuses a directory twice, and applying the same
// layer again makes the earlier application moot.
func distinctLayers(src *source) []layerSource {
	var out []layerSource
	seen := map[v1.Hash]bool{}
	for _, l := range slices.Backward(src.layers) {
		if !seen[l.diffID] {
			seen[l.diffID] = true
			out = append(out, l)
		}
	}
	return out
}

// layers makes sure every layer is in the cache and returns the overlay's
// lower directories, topmost first. The image's size, the sum of its
// distinct layers' sizes, must stay within the store's limit: the layers
// already cached are counted first, then each one unpacked may take what is
// left.
func (s *Store) layers(ctx context.Context, src *source) ([]string, error) {
	distinct := distinctLayers(src)
	var total int64
	cached := map[v1.Hash]bool{}
	for _, l := range distinct {
		if !s.layerCached(l.diffID) {
			continue
		}
		size, err := s.layerSize(l.diffID)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", src.ref, err)
		}
		cached[l.diffID] = true
		total = addSize(total, size)
	}
	if err := s.checkImageSize(src, total, nil); err != nil {
		return nil, err
	}
	var lowers []string
	for _, l := range distinct {
		budget := int64(-1)
		if s.maxImageSize >= 0 {
			budget = s.maxImageSize - total
		}
		d, size, err := s.ensureLayer(ctx, l, budget)
		if errors.Is(err, api.ErrTooLarge) && s.maxImageSize >= 0 {
			return nil, s.tooLarge(src, err)
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", src.ref, err)
		}
		if !cached[l.diffID] {
			total = addSize(total, size)
		}
		if err := s.checkImageSize(src, total, nil); err != nil {
			return nil, err
		}
		lowers = append(lowers, d)
	}
	if len(lowers) == 0 {
		d, err := s.emptyLayerDir()
		if err != nil {
			return nil, err
		}
		lowers = append(lowers, d)
	}
	return lowers, nil
}

// checkImageSize refuses an image of size bytes over the store's limit,
// with an error that names the limit and wraps api.ErrTooLarge (and cause,
// when there is one).
func (s *Store) checkImageSize(src *source, size int64, cause error) error {
	if s.maxImageSize < 0 || size <= s.maxImageSize {
		return nil
	}
	if cause == nil {
		cause = api.ErrTooLarge
	}
	return s.tooLarge(src, cause)
}

// tooLarge is the error of an image refused for its size by the store's
// limit (not negative), for cause.
func (s *Store) tooLarge(src *source, cause error) error {
	return fmt.Errorf("image %s: larger than the limit of %s (%d bytes) uncompressed: %w",
		src.ref, api.FormatSize(uint64(s.maxImageSize)), s.maxImageSize, cause)
}

// Release unmounts and removes what Provision made under dir: rootfs,
// upper, work and sandbox. It is idempotent. It refuses to remove a tree
// that something is still mounted in.
func (s *Store) Release(ctx context.Context, dir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("release: container directory %q is not an absolute path: %w", dir, api.ErrInvalid)
	}
	dir = filepath.Clean(dir)
	var errs []error
	for _, n := range []string{rootfsName, upperName, workName, sandboxName} {
		p := filepath.Join(dir, n)
		if err := unmountUnder(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("release: %w", err))
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("release: %w", err))
		}
	}
	if len(errs) == 0 {
		// The container no longer uses its layers.
		if err := os.Remove(s.leasePath(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Unmount unmounts what Provision mounted under dir and keeps the files
// (the container's writes in upper): an exited container holds no mount.
// Release removes them later. It is idempotent.
func (s *Store) Unmount(ctx context.Context, dir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("unmount: container directory %q is not an absolute path: %w", dir, api.ErrInvalid)
	}
	var errs []error
	for _, n := range []string{rootfsName, upperName, workName, sandboxName} {
		if err := unmountUnder(ctx, filepath.Join(filepath.Clean(dir), n)); err != nil {
			errs = append(errs, fmt.Errorf("unmount: %w", err))
		}
	}
	return errors.Join(errs...)
}

// bindRO is a recursive read-only bind mount of a host directory.
func bindRO(src, dst string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rro", "rprivate"}}
}

// lockFile takes an flock on path, creating it: exclusive, or shared by
// any number of holders. It returns the function that releases it, and
// waits for the lock as long as ctx allows.
func lockFile(ctx context.Context, path string, exclusive bool) (func(), error) {
	acquire := flock.AcquireSharedContext
	if exclusive {
		acquire = flock.AcquireContext
	}
	l, err := acquire(ctx, path)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}
