package cdi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/caisson/caisson/api"
)

// Files are the user-space driver files a GPU container needs, as host paths
// under Root. Each is bind-mounted read-only at its path relative to Root.
type Files struct {
	// Root is the driver root the paths lie under: "/" when the driver is
	// installed on the host, the driver container's root otherwise.
	Root string
	// Libraries are the driver's version-suffixed libraries
	// (libcuda.so.550.54.15).
	Libraries []string
	// Links are the soname links to them in the same directories
	// (libcuda.so.1 -> libcuda.so.550.54.15), which programs open. A bind
	// mount of a link mounts the library it points to, so the container
	// finds the library by its soname without the toolkit's
	// create-symlinks hook.
	Links []string
	// Binaries are nvidia-smi and the other driver tools.
	Binaries []string
	// Firmware is the GSP firmware the driver's libraries load.
	Firmware []string
	// Sockets are the IPC endpoints of the driver's daemons: persistenced,
	// fabricmanager, and the MPS pipe directory.
	Sockets []string
}

// driverLibraries are the driver's compute and utility libraries (those
// that libnvidia-container mounts for NVIDIA_DRIVER_CAPABILITIES
// compute,utility), as patterns of the name before ".so". Graphics, video
// and display libraries are left out. libnvidia-fatbinaryloader and
// libnvidia-compiler only exist in older drivers.
var driverLibraries = []string{
	"libnvidia-ml", "libnvidia-cfg",
	"libcuda", "libcudadebugger", "libnvidia-ptxjitcompiler", "libnvidia-nvvm",
	"libnvidia-opencl", "libnvidia-gpucomp", "libnvidia-allocator", "libnvidia-pkcs11*",
	"libnvidia-fatbinaryloader", "libnvidia-compiler",
}

// driverBinaries are looked up in usr/bin, then bin.
var driverBinaries = []string{
	"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced",
	"nvidia-cuda-mps-control", "nvidia-cuda-mps-server",
}

// driverSockets are relative to the driver root.
var driverSockets = []string{
	"run/nvidia-persistenced/socket",
	"run/nvidia-fabricmanager/socket",
	"tmp/nvidia-mps",
}

// DriverFiles finds the files of driver version (the kernel module's, as
// NVML or /proc/driver/nvidia/version give it) under driverRoot ("/" when
// empty) for arch (a GOARCH name, amd64, ppc64le or arm64, or its uname
// name). The library directories come from the driver root's
// etc/ld.so.cache, keeping only entries for arch's 64-bit libraries (so a
// multilib host's 32-bit copies are not mounted); without a cache they are
// the standard directories of arch (usr/lib/<triplet>, lib/<triplet>,
// usr/lib64, usr/lib). Missing files are left out: a root without the driver
// gives empty Files. An unknown arch or a bad version is an error wrapping
// api.ErrInvalid, and so is an ld.so.cache that cannot be parsed.
func DriverFiles(driverRoot, version, arch string) (Files, error) {
	a, ok := ldArchFlags[arch]
	if !ok {
		return Files{}, fmt.Errorf("driver files: unknown architecture %q: %w", arch, api.ErrInvalid)
	}
	if version == "" || version == "." || version == ".." || strings.ContainsAny(version, "/*?[\\") {
		return Files{}, fmt.Errorf("driver files: bad driver version %q: %w", version, api.ErrInvalid)
	}
	root := driverRoot
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	f := Files{Root: root}

	dirs, err := libraryDirs(root, a.flag, a.triplet)
	if err != nil {
		return Files{}, err
	}
	libs, links := map[string]bool{}, map[string]bool{}
	for _, dir := range dirs {
		if err := driverLibrariesIn(root, dir, version, libs, links, &f); err != nil {
			return Files{}, err
		}
	}
	slices.Sort(f.Libraries)
	slices.Sort(f.Links)

	for _, name := range driverBinaries {
		for _, dir := range []string{"usr/bin", "bin"} {
			p := filepath.Join(root, dir, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				f.Binaries = append(f.Binaries, p)
				break
			}
		}
	}

	fwDir := filepath.Join(root, "lib/firmware/nvidia", version)
	entries, err := readDir(fwDir)
	if err != nil {
		return Files{}, err
	}
	for _, e := range entries {
		if ok, _ := path.Match("gsp*.bin", e.Name()); ok && !e.IsDir() {
			f.Firmware = append(f.Firmware, filepath.Join(fwDir, e.Name()))
		}
	}

	for _, s := range driverSockets {
		p := filepath.Join(root, s)
		if _, err := os.Lstat(p); err == nil {
			f.Sockets = append(f.Sockets, p)
		}
	}
	return f, nil
}

// libraryDirs lists the directories (absolute, relative to root) that hold
// the driver's libraries, in ld.so.cache order.
func libraryDirs(root string, arch int32, triplet string) ([]string, error) {
	cachePath := filepath.Join(root, "etc/ld.so.cache")
	data, err := os.ReadFile(cachePath)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"/usr/lib/" + triplet, "/lib/" + triplet, "/usr/lib64", "/usr/lib"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("driver files: %w", err)
	}
	entries, err := parseLDCache(data)
	if err != nil {
		return nil, fmt.Errorf("driver files: %s: %w", cachePath, err)
	}
	var dirs []string
	for _, e := range entries {
		if e.flags&ldFlagArchMask != arch || e.flags&ldFlagTypeMask&ldFlagELF == 0 {
			continue
		}
		name, _, ok := strings.Cut(e.key, ".so")
		if !ok || !isDriverLibrary(name) || !filepath.IsAbs(e.value) {
			continue
		}
		if dir := filepath.Dir(filepath.Clean(e.value)); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// driverLibrariesIn adds the version's libraries in dir, and the soname
// links to them, skipping names an earlier directory already gave.
func driverLibrariesIn(root, dir, version string, libs, links map[string]bool, f *Files) error {
	hostDir := filepath.Join(root, dir)
	entries, err := readDir(hostDir)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	for _, e := range entries {
		name, suffix, ok := strings.Cut(e.Name(), ".so.")
		if ok && suffix == version && !e.IsDir() && isDriverLibrary(name) {
			found[e.Name()] = true
			if !libs[e.Name()] {
				libs[e.Name()] = true
				f.Libraries = append(f.Libraries, filepath.Join(hostDir, e.Name()))
			}
		}
	}
	for _, e := range entries {
		name, suffix, ok := strings.Cut(e.Name(), ".so.")
		if !ok || suffix == version || e.Type()&fs.ModeSymlink == 0 || links[e.Name()] || !isDriverLibrary(name) {
			continue
		}
		target, err := os.Readlink(filepath.Join(hostDir, e.Name()))
		if err != nil || filepath.Base(target) != name+".so."+version || !found[filepath.Base(target)] {
			continue
		}
		links[e.Name()] = true
		f.Links = append(f.Links, filepath.Join(hostDir, e.Name()))
	}
	return nil
}

func isDriverLibrary(name string) bool {
	for _, p := range driverLibraries {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// readDir reads a directory; one that does not exist (or is not a
// directory) is empty.
func readDir(dir string) ([]fs.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("driver files: %w", err)
	}
	return entries, nil
}
