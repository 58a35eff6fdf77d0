package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/containerizer"
)

// hostPrivate are the host's top-level directories that a container with
// no image does not see: the runtime mounts its own /proc, /sys and /dev,
// /tmp and /run are private tmpfs, and /mnt is rebuilt to hold the sandbox.
var hostPrivate = []string{"proc", "sys", "dev", "run", "tmp", "mnt", "lost+found"}

// provisionHost gives the container the host's filesystem read-only, as
// Mesos command tasks see it: an empty root directory where each top-level
// host directory is bind-mounted read-only (recursively) and each top-level
// symbolic link (bin -> usr/bin) is recreated, a private writable sandbox
// at /mnt/sandbox, and private tmpfs at /tmp and /run. /mnt shows the
// host's /mnt entries the same way, beside the sandbox. The store's root
// and the hidden paths are covered by empty read-only tmpfs.
func (s *Store) provisionHost(_ context.Context, p *provisioning) (*containerizer.Rootfs, error) {
	rootfs := p.path(rootfsName)
	if err := p.mkdir(rootfs, 0o755); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	sandbox := p.path(sandboxName)
	if err := mkdirMode(sandbox, 0o755); err == nil {
		p.created = append(p.created, sandbox)
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("provision: %w", err)
	}

	var mounts []specs.Mount
	bound := map[string]bool{} // container paths bind-mounted from the host
	if err := s.mirror(rootfs, "/", &mounts, bound); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	for _, d := range hostPrivate {
		if d == "lost+found" {
			continue
		}
		if err := mkdirMode(filepath.Join(rootfs, d), 0o755); err != nil {
			return nil, fmt.Errorf("provision: %w", err)
		}
	}
	if err := s.mirror(filepath.Join(rootfs, "mnt"), "/mnt", &mounts, bound); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if err := mkdirMode(filepath.Join(rootfs, filepath.FromSlash(SandboxPath)), 0o755); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}

	mounts = append(mounts,
		specs.Mount{Destination: SandboxPath, Type: "bind", Source: sandbox, Options: []string{"rbind", "rw", "rprivate"}},
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755"}},
	)
	mounts = append(mounts, s.masks(bound)...)

	return &containerizer.Rootfs{
		Path:     rootfs,
		Readonly: true,
		Mounts:   mounts,
		Config: containerizer.ImageConfig{
			WorkingDir: SandboxPath,
			Env:        []string{"CAISSON_SANDBOX=" + SandboxPath},
		},
	}, nil
}

// mirror recreates in dst the host directory at container path cpath (a
// host path relative to s.hostRoot): symbolic links are copied, directories
// become read-only bind mounts on new mount points, the rest (files,
// sockets) is left out. At "/" the private directories are skipped; in
// /mnt, a host "sandbox" entry is shadowed by the container's sandbox.
func (s *Store) mirror(dst, cpath string, mounts *[]specs.Mount, bound map[string]bool) error {
	src := filepath.Join(s.hostRoot, filepath.FromSlash(cpath))
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) && cpath != "/" {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if cpath == "/" && slices.Contains(hostPrivate, name) {
			continue
		}
		if cpath == "/mnt" && name == filepath.Base(SandboxPath) {
			continue
		}
		hp := filepath.Join(src, name)
		cp := filepath.Join(cpath, name)
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, filepath.Join(dst, name)); err != nil {
				return err
			}
		case e.IsDir():
			if err := mkdirMode(filepath.Join(dst, name), 0o755); err != nil {
				return err
			}
			*mounts = append(*mounts, bindRO(hp, cp))
			bound[cp] = true
		}
	}
	return nil
}

// masks covers the store's root and the hidden paths with empty read-only
// tmpfs where they lie in a directory bound from the host.
func (s *Store) masks(bound map[string]bool) []specs.Mount {
	hostRoot, err := filepath.EvalSymlinks(s.hostRoot)
	if err != nil {
		hostRoot = s.hostRoot
	}
	var paths []string
	for _, h := range append([]string{s.root}, s.hide...) {
		// A path that does not exist has nothing to hide, and no mount
		// point in a read-only tree.
		real, err := filepath.EvalSymlinks(h)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(hostRoot, real)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		cp := filepath.Join("/", rel)
		for b := range bound {
			if within(cp, b) {
				paths = append(paths, cp)
				break
			}
		}
	}
	slices.Sort(paths)
	var (
		kept   []string
		mounts []specs.Mount
	)
	for _, p := range paths {
		// Sorted, a path comes after those it is within; one mask is
		// enough for a tree.
		if slices.ContainsFunc(kept, func(k string) bool { return within(p, k) }) {
			continue
		}
		kept = append(kept, p)
		mounts = append(mounts, specs.Mount{
			Destination: p,
			Type:        "tmpfs",
			Source:      "tmpfs",
			Options:     []string{"ro", "nosuid", "nodev", "noexec", "size=4k", "mode=755"},
		})
	}
	return mounts
}
