//go:build linux

package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

const (
	xattrPAXPrefix = "SCHILY.xattr."
	overlayOpaque  = "trusted.overlay.opaque"
)

// extractor unpacks one layer. Nothing but the tar stream writes into dir
// while it runs (dir is a fresh temporary directory only this process
// knows), so checking a path with Lstat and then using it is not racy: the
// only adversary is the archive, and it acts one entry at a time.
type extractor struct {
	dir        string // the layer root, absolute
	layer      string // the diff ID, for errors
	log        *slog.Logger
	privileged bool // root: chown, device nodes and trusted.* xattrs work
	dirTimes   []dirTime
}

// dirTime is a directory's times, set once every entry is in place, since
// creating entries in a directory changes its mtime.
type dirTime struct {
	rel          string
	atime, mtime time.Time
}

// extractLayer unpacks the uncompressed layer tar stream r into dir, an
// existing empty directory, converting OCI whiteouts to overlayfs ones, and
// checks that the stream's digest is diffID. An entry that would write
// outside dir, or through a symbolic link, is refused with an error that
// wraps api.ErrInvalid; a stream whose digest differs with one that wraps
// api.ErrCorrupt (when an entry is refused, the rest of the stream is read
// to tell which). On error, dir holds a partial layer that the caller
// removes.
//
// It returns the layer's size: the larger of the stream's length and the
// sum, over its entries, of a 512-byte header and each regular file's
// apparent size rounded up to 512 bytes. A sparse file thus counts as if
// it were written out, as it is. With limit not negative, a layer larger
// than limit is refused with an error wrapping api.ErrTooLarge, before the
// entry that would pass it is written.
func extractLayer(ctx context.Context, r io.Reader, dir string, diffID v1.Hash, limit int64, log *slog.Logger) (int64, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	x := &extractor{dir: abs, layer: diffID.String(), log: log, privileged: os.Geteuid() == 0}
	// os.MkdirTemp makes 0700 directories; a layer root without an entry
	// for itself is 0755 like any directory the archive implies.
	if err := os.Chmod(abs, 0o755); err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}

	h := sha256.New()
	cr := &countingReader{r: r, limit: limit, layer: diffID}
	hr := io.TeeReader(cr, h)
	digest := func() string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
	// fail returns err, unless the rest of the stream shows the layer is
	// not the one its diff ID names: then that is the error.
	fail := func(err error) (int64, error) {
		if errors.Is(err, api.ErrTooLarge) || ctx.Err() != nil {
			return 0, err
		}
		_, derr := io.Copy(io.Discard, hr)
		switch {
		case derr == nil && digest() != diffID.String():
			return 0, fmt.Errorf("layer %s: content digest is %s: %w", diffID, digest(), api.ErrCorrupt)
		case errors.Is(derr, api.ErrCorrupt):
			return 0, fmt.Errorf("layer %s: %w", diffID, derr)
		}
		return 0, err
	}
	tr := tar.NewReader(hr)
	var accounted int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("layer %s: %w", diffID, err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		// With GODEBUG=tarinsecurepath=0 the reader flags names such as
		// "/x" or "../x" but still returns them; entry judges them itself.
		if err != nil && (hdr == nil || !errors.Is(err, tar.ErrInsecurePath)) {
			return fail(fmt.Errorf("layer %s: read: %w", diffID, corrupt(err)))
		}
		accounted = addSize(accounted, entrySize(hdr))
		if limit >= 0 && accounted > limit {
			return 0, fmt.Errorf("layer %s: entry %q: %w", diffID, hdr.Name, cr.tooLarge())
		}
		if err := x.entry(hdr, tr); err != nil {
			return fail(fmt.Errorf("layer %s: entry %q: %w", diffID, hdr.Name, err))
		}
	}
	// The digest covers the whole stream, with the tar's end padding.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return 0, fmt.Errorf("layer %s: read: %w", diffID, err)
	}
	if got := digest(); got != diffID.String() {
		return 0, fmt.Errorf("layer %s: content digest is %s: %w", diffID, got, api.ErrCorrupt)
	}
	x.setDirTimes()
	return max(accounted, cr.n), nil
}

// countingReader counts a layer's uncompressed bytes and, with limit not
// negative, refuses more than limit.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
	layer v1.Hash
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit >= 0 && c.n > c.limit {
		return 0, c.tooLarge()
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit >= 0 && c.n > c.limit {
		return n, c.tooLarge()
	}
	return n, err
}

func (c *countingReader) tooLarge() error {
	return fmt.Errorf("more than the %d bytes the image may still take: %w", c.limit, api.ErrTooLarge)
}

// corrupt marks archive format errors as invalid input; I/O errors from the
// source stay as they are.
func corrupt(err error) error {
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	return err
}

// refuse is an entry the extractor will not write.
func refuse(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, api.ErrInvalid)...)
}

func (x *extractor) abs(rel string) string {
	if rel == "" {
		return x.dir
	}
	return filepath.Join(x.dir, filepath.FromSlash(rel))
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeGNULongName, tar.TypeGNULongLink, tar.TypeXHeader:
		return nil // consumed by the reader; never returned in practice
	}
	rel, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		return x.root(hdr)
	}
	if base := path.Base(rel); strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(rel, base)
	}
	if err := x.parents(rel, true); err != nil {
		return err
	}
	if err := checkIDs(hdr); err != nil {
		return err
	}
	abs := x.abs(rel)

	switch hdr.Typeflag {
	case tar.TypeDir:
		exists, err := x.clear(abs, true)
		if err != nil {
			return err
		}
		if !exists {
			if err := os.Mkdir(abs, 0o700); err != nil {
				return err
			}
		}
		if err := x.metadata(abs, hdr, false); err != nil {
			return err
		}
		x.dirTimes = append(x.dirTimes, dirTime{rel: rel, atime: atime(hdr), mtime: hdr.ModTime})
		return nil

	case tar.TypeReg:
		if _, err := x.clear(abs, false); err != nil {
			return err
		}
		f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return corrupt(err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		return x.metadata(abs, hdr, false)

	case tar.TypeSymlink:
		if _, err := x.clear(abs, false); err != nil {
			return err
		}
		// The target is kept as written, absolute or not: it is resolved
		// inside the container, and never followed here.
		if err := os.Symlink(hdr.Linkname, abs); err != nil {
			return err
		}
		return x.metadata(abs, hdr, true)

	case tar.TypeLink:
		return x.hardlink(rel, hdr)

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		if hdr.Typeflag != tar.TypeFifo && !x.privileged {
			x.log.Debug("skipping a device node: not root", "layer", x.layer, "entry", hdr.Name)
			return nil
		}
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return refuse("device numbers %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		if _, err := x.clear(abs, false); err != nil {
			return err
		}
		if err := unix.Mknod(abs, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return &fs.PathError{Op: "mknod", Path: abs, Err: err}
		}
		return x.metadata(abs, hdr, false)

	default:
		return refuse("unsupported entry type %q", hdr.Typeflag)
	}
}

// root applies an entry for the layer root ("./") to dir itself.
func (x *extractor) root(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return refuse("the layer root is not a directory")
	}
	if err := checkIDs(hdr); err != nil {
		return err
	}
	if err := x.metadata(x.dir, hdr, false); err != nil {
		return err
	}
	x.dirTimes = append(x.dirTimes, dirTime{rel: "", atime: atime(hdr), mtime: hdr.ModTime})
	return nil
}

// parents checks every directory above rel, inside the layer: each must be
// a real directory, not a symbolic link (a legitimate layer never writes
// through one). With create, missing ones are made, 0755 and root's, as
// tar does for directories an archive implies.
func (x *extractor) parents(rel string, create bool) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(dir, "/") {
		cur = path.Join(cur, c)
		abs := x.abs(cur)
		fi, err := os.Lstat(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := mkdirMode(abs, 0o755); err != nil {
				return err
			}
			continue
		case errors.Is(err, fs.ErrNotExist):
			return refuse("%s does not exist in the layer", cur)
		case err != nil:
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return refuse("path goes through the symbolic link %s", cur)
		}
		if !fi.IsDir() {
			return refuse("path goes through %s, which is not a directory", cur)
		}
	}
	return nil
}

// clear makes room for an entry at abs: an earlier entry of the same name
// is replaced, as tar does, except that a directory stays when a directory
// comes again (exists is then true). Nothing is followed: a symbolic link
// is removed, not its target.
func (x *extractor) clear(abs string, dir bool) (exists bool, err error) {
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if dir && fi.IsDir() {
		return true, nil
	}
	if fi.IsDir() {
		return false, os.RemoveAll(abs)
	}
	return false, os.Remove(abs)
}

// hardlink links rel to the earlier entry it names, which must be in this
// layer, reached without symbolic links, and not a directory.
func (x *extractor) hardlink(rel string, hdr *tar.Header) error {
	target, err := cleanEntryName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	if target == "" || target == rel {
		return refuse("link target %q is not a file", hdr.Linkname)
	}
	if err := x.parents(target, false); err != nil {
		return fmt.Errorf("link target %q: %w", hdr.Linkname, err)
	}
	tabs := x.abs(target)
	fi, err := os.Lstat(tabs)
	if errors.Is(err, fs.ErrNotExist) {
		return refuse("link target %q is not in the layer", hdr.Linkname)
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return refuse("link target %q is a directory", hdr.Linkname)
	}
	abs := x.abs(rel)
	if _, err := x.clear(abs, false); err != nil {
		return err
	}
	// linkat without AT_SYMLINK_FOLLOW links a symbolic link itself.
	if err := unix.Linkat(unix.AT_FDCWD, tabs, unix.AT_FDCWD, abs, 0); err != nil {
		return &os.LinkError{Op: "link", Old: tabs, New: abs, Err: err}
	}
	return nil
}

// whiteout converts an OCI whiteout to overlayfs form: the opaque marker
// becomes the trusted.overlay.opaque xattr on its directory, ".wh.NAME" a
// 0:0 character device named NAME.
func (x *extractor) whiteout(rel, base string) error {
	if err := x.parents(rel, true); err != nil {
		return err
	}
	parent := path.Dir(rel)
	if parent == "." {
		parent = ""
	}
	if base == whiteoutOpaque {
		if err := unix.Lsetxattr(x.abs(parent), overlayOpaque, []byte("y"), 0); err != nil {
			return &fs.PathError{Op: "setxattr " + overlayOpaque, Path: x.abs(parent), Err: err}
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		x.log.Debug("skipping a whiteout metadata entry", "layer", x.layer, "entry", rel)
		return nil
	}
	name, err := whiteoutTarget(base)
	if err != nil {
		return err
	}
	abs := x.abs(path.Join(parent, name))
	if _, err := x.clear(abs, false); err != nil {
		return err
	}
	if err := unix.Mknod(abs, unix.S_IFCHR, 0); err != nil {
		return &fs.PathError{Op: "mknod whiteout", Path: abs, Err: err}
	}
	return nil
}

// checkIDs refuses owners that do not fit a uid_t.
func checkIDs(hdr *tar.Header) error {
	if hdr.Uid < 0 || hdr.Uid >= math.MaxUint32 || hdr.Gid < 0 || hdr.Gid >= math.MaxUint32 {
		return refuse("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	return nil
}

// metadata applies owner, mode, xattrs and (except for directories, done
// last) times to a new entry. abs is not a symbolic link unless symlink is
// set; nothing here follows one.
func (x *extractor) metadata(abs string, hdr *tar.Header, symlink bool) error {
	if x.privileged {
		if err := unix.Lchown(abs, hdr.Uid, hdr.Gid); err != nil {
			return &fs.PathError{Op: "lchown", Path: abs, Err: err}
		}
	}
	// After chown, which clears the set-id bits.
	if !symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, abs, uint32(hdr.Mode&0o7777), 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: abs, Err: err}
		}
	}
	if err := x.xattrs(abs, hdr, symlink); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	return setTimes(abs, atime(hdr), hdr.ModTime)
}

// xattrs sets the extended attributes recorded in PAX headers. Overlayfs
// attributes are dropped: a layer must not steer the overlay (redirects,
// metacopy, opacity other than by whiteout entries).
func (x *extractor) xattrs(abs string, hdr *tar.Header, symlink bool) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			x.log.Debug("dropping an overlayfs xattr", "layer", x.layer, "entry", hdr.Name, "xattr", name)
			continue
		}
		if !x.privileged && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) {
			continue
		}
		err := unix.Lsetxattr(abs, name, []byte(v), 0)
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOTSUP):
			x.log.Debug("xattr not supported here", "layer", x.layer, "entry", hdr.Name, "xattr", name)
		case symlink && errors.Is(err, unix.EPERM):
			// user.* attributes are not allowed on symbolic links.
		default:
			return &fs.PathError{Op: "setxattr " + name, Path: abs, Err: err}
		}
	}
	return nil
}

// setDirTimes sets the directories' times once nothing more is written in
// them. A directory replaced since, or now reached through a symbolic link
// that a later entry put in its path, is skipped.
func (x *extractor) setDirTimes() {
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		d := x.dirTimes[i]
		if d.rel != "" && x.parents(d.rel, false) != nil {
			continue
		}
		abs := x.abs(d.rel)
		if fi, err := os.Lstat(abs); err != nil || !fi.IsDir() {
			continue
		}
		if err := setTimes(abs, d.atime, d.mtime); err != nil {
			x.log.Debug("setting directory times", "layer", x.layer, "dir", d.rel, "error", err)
		}
	}
}

func atime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// setTimes sets a path's times without following a symbolic link.
func setTimes(abs string, atime, mtime time.Time) error {
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, abs, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: abs, Err: err}
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
