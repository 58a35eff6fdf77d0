//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// ent is one tar entry for makeTar.
type ent struct {
	name     string
	typ      byte
	body     string
	link     string
	mode     int64
	uid, gid int
	pax      map[string]string
	major    int64
	minor    int64
	mtime    time.Time
}

func makeTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:       e.name,
			Typeflag:   e.typ,
			Linkname:   e.link,
			Mode:       e.mode,
			Uid:        e.uid,
			Gid:        e.gid,
			Devmajor:   e.major,
			Devminor:   e.minor,
			PAXRecords: e.pax,
			ModTime:    e.mtime,
			Format:     tar.FormatPAX,
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if e.typ == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = time.Unix(1700000000, 0)
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestOf(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// extractSandbox makes parent/{layer,outside}, with a file in outside that
// an escaping entry would be likely to hit, and returns the three paths.
func extractSandbox(t testing.TB) (parent, dest, outside string) {
	t.Helper()
	return extractSandboxIn(t, t.TempDir())
}

// extractSandboxIn makes the sandbox in parent, an empty directory.
func extractSandboxIn(t testing.TB, parent string) (_, dest, outside string) {
	t.Helper()
	dest = filepath.Join(parent, "layer")
	outside = filepath.Join(parent, "outside")
	for _, d := range []string{dest, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("sentinel"), 0o644); err != nil {
		t.Fatal(err)
	}
	return parent, dest, outside
}

// checkNothingOutside fails the test if anything but the layer directory
// and the untouched sentinel is under parent.
func checkNothingOutside(t testing.TB, parent string) {
	t.Helper()
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(parent, p)
		switch {
		case rel == ".", rel == "layer", rel == "outside":
			return nil
		case strings.HasPrefix(rel, "layer/"):
			return fs.SkipDir
		case rel == "outside/passwd":
			data, err := os.ReadFile(p)
			if err != nil || string(data) != "sentinel" {
				t.Errorf("the file outside the layer changed: %q, %v", data, err)
			}
			if !d.Type().IsRegular() {
				t.Errorf("the file outside the layer is now %v", d.Type())
			}
			return nil
		}
		t.Errorf("%s was created outside the layer", rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExtractEscapesRefused(t *testing.T) {
	testutil.RequiresLinux(t)
	// Symbolic links aim at the test's "outside" directory rather than at
	// /etc, so that a bug cannot damage the host; the check is the same.
	tests := []struct {
		name    string
		entries func(outside string) []ent
	}{
		{"dotdot", func(string) []ent {
			return []ent{{name: "../passwd", typ: tar.TypeReg, body: "x"}}
		}},
		{"dotdot inside a path", func(string) []ent {
			return []ent{{name: "a/../../outside/passwd", typ: tar.TypeReg, body: "x"}}
		}},
		{"dotdot directory", func(string) []ent {
			return []ent{{name: "../outside/new/", typ: tar.TypeDir}}
		}},
		{"through an absolute symlink", func(outside string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "a/passwd", typ: tar.TypeReg, body: "x"},
			}
		}},
		{"through a symlink to the parent", func(string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: ".."},
				{name: "a/x", typ: tar.TypeReg, body: "x"},
			}
		}},
		{"directory through a symlink", func(outside string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "a/d/", typ: tar.TypeDir},
			}
		}},
		{"symlink through a symlink", func(outside string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "a/passwd", typ: tar.TypeSymlink, link: "/nowhere"},
			}
		}},
		{"hardlink out", func(string) []ent {
			return []ent{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}
		}},
		{"hardlink through a symlink", func(outside string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "h", typ: tar.TypeLink, link: "a/passwd"},
			}
		}},
		{"hardlink placed through a symlink", func(outside string) []ent {
			return []ent{
				{name: "f", typ: tar.TypeReg, body: "x"},
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "a/passwd", typ: tar.TypeLink, link: "f"},
			}
		}},
		{"hardlink to a missing file", func(string) []ent {
			return []ent{{name: "h", typ: tar.TypeLink, link: "nothing"}}
		}},
		{"hardlink to a directory", func(string) []ent {
			return []ent{{name: "d/", typ: tar.TypeDir}, {name: "h", typ: tar.TypeLink, link: "d"}}
		}},
		{"whiteout of dotdot", func(string) []ent {
			return []ent{{name: "a/.wh...", typ: tar.TypeReg}}
		}},
		{"whiteout of dot", func(string) []ent {
			return []ent{{name: "a/.wh..", typ: tar.TypeReg}}
		}},
		{"empty whiteout", func(string) []ent {
			return []ent{{name: ".wh.", typ: tar.TypeReg}}
		}},
		{"whiteout climbing out", func(string) []ent {
			return []ent{{name: "../outside/.wh.passwd", typ: tar.TypeReg}}
		}},
		{"whiteout through a symlink", func(outside string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "a/.wh.passwd", typ: tar.TypeReg},
			}
		}},
		{"opaque through a symlink", func(outside string) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: outside},
				{name: "a/.wh..wh..opq", typ: tar.TypeReg},
			}
		}},
		{"through a file", func(string) []ent {
			return []ent{
				{name: "f", typ: tar.TypeReg, body: "x"},
				{name: "f/x", typ: tar.TypeReg, body: "x"},
			}
		}},
		{"root replaced by a symlink", func(outside string) []ent {
			return []ent{{name: "./", typ: tar.TypeSymlink, link: outside}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, dest, outside := extractSandbox(t)
			data := makeTar(t, tt.entries(outside)...)
			_, err := extractLayer(context.Background(), bytes.NewReader(data), dest, digestOf(data), -1, nil)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("extractLayer: got %v, want an error wrapping api.ErrInvalid", err)
			}
			t.Logf("refused: %v", err)
			checkNothingOutside(t, parent)
		})
	}
}

func TestExtractDigestMismatch(t *testing.T) {
	testutil.RequiresLinux(t)
	parent, dest, _ := extractSandbox(t)
	data := makeTar(t, ent{name: "f", typ: tar.TypeReg, body: "x"})
	other := digestOf([]byte("something else"))
	_, err := extractLayer(context.Background(), bytes.NewReader(data), dest, other, -1, nil)
	if !errors.Is(err, api.ErrCorrupt) {
		t.Fatalf("extractLayer: got %v, want an error wrapping api.ErrCorrupt", err)
	}
	checkNothingOutside(t, parent)
}

func TestExtractCorruptArchive(t *testing.T) {
	testutil.RequiresLinux(t)
	_, dest, _ := extractSandbox(t)
	data := makeTar(t, ent{name: "f", typ: tar.TypeReg, body: strings.Repeat("x", 2000)})
	data = data[:700] // cut inside the file's content
	_, err := extractLayer(context.Background(), bytes.NewReader(data), dest, digestOf(data), -1, nil)
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("extractLayer: got %v, want an error wrapping api.ErrInvalid", err)
	}
}

// node describes an extracted file for comparison.
type node struct {
	Type     string
	Mode     fs.FileMode
	UID, GID uint32
	Body     string
	Link     string
	Rdev     uint64
	Opaque   string
	Xattr    string
}

func describe(t *testing.T, p string) node {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	n := node{Mode: fs.FileMode(st.Mode & 0o7777), UID: st.Uid, GID: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type = "file"
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n.Body = string(data)
	case unix.S_IFDIR:
		n.Type = "dir"
	case unix.S_IFLNK:
		n.Type = "symlink"
		n.Mode = 0
		l, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		n.Link = l
	case unix.S_IFCHR:
		n.Type = "char"
		n.Rdev = st.Rdev
	case unix.S_IFIFO:
		n.Type = "fifo"
	default:
		n.Type = "other"
	}
	buf := make([]byte, 64)
	if sz, err := unix.Lgetxattr(p, overlayOpaque, buf); err == nil {
		n.Opaque = string(buf[:sz])
	}
	if sz, err := unix.Lgetxattr(p, "user.caisson", buf); err == nil {
		n.Xattr = string(buf[:sz])
	}
	return n
}

func TestExtract(t *testing.T) {
	testutil.RequiresRoot(t) // owners, device nodes and trusted.* xattrs
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []ent{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "/abs/file", typ: tar.TypeReg, body: "absolute names are relative", mode: 0o600},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/tool", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755, uid: 1000, gid: 1001, mtime: mtime},
		{name: "bin/alias", typ: tar.TypeSymlink, link: "/bin/tool"},
		{name: "bin/hard", typ: tar.TypeLink, link: "bin/tool"},
		{name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0::/root:/bin/sh\n"}, // parent implied
		{name: "a/../b", typ: tar.TypeReg, body: "lexical"},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "x/", typ: tar.TypeDir, mode: 0o750, pax: map[string]string{
			"SCHILY.xattr.user.caisson":           "kept",
			"SCHILY.xattr.trusted.overlay.origin": "dropped",
		}},
		{name: "gone/.wh..wh..opq", typ: tar.TypeReg},
		{name: ".wh.deleted", typ: tar.TypeReg},
		{name: "bin/.wh.oldtool", typ: tar.TypeReg},
		{name: "replaced", typ: tar.TypeSymlink, link: "/etc"},
		{name: "replaced/", typ: tar.TypeDir, mode: 0o700},
		{name: "replaced/inside", typ: tar.TypeReg, body: "in a real directory"},
		{name: "twice", typ: tar.TypeReg, body: "first"},
		{name: "twice", typ: tar.TypeReg, body: "second"},
		{name: ".wh..wh.plnk", typ: tar.TypeReg, body: "aufs bookkeeping"},
	}
	_, dest, _ := extractSandbox(t)
	data := makeTar(t, entries...)
	if _, err := extractLayer(context.Background(), bytes.NewReader(data), dest, digestOf(data), -1, nil); err != nil {
		t.Fatal(err)
	}

	want := map[string]node{
		"":                {Type: "dir", Mode: 0o755},
		"abs":             {Type: "dir", Mode: 0o755},
		"abs/file":        {Type: "file", Mode: 0o600, Body: "absolute names are relative"},
		"bin":             {Type: "dir", Mode: 0o755},
		"bin/tool":        {Type: "file", Mode: 0o4755, UID: 1000, GID: 1001, Body: "#!/bin/sh\n"},
		"bin/alias":       {Type: "symlink", Link: "/bin/tool"},
		"bin/hard":        {Type: "file", Mode: 0o4755, UID: 1000, GID: 1001, Body: "#!/bin/sh\n"},
		"bin/oldtool":     {Type: "char"},
		"etc":             {Type: "dir", Mode: 0o755},
		"etc/passwd":      {Type: "file", Mode: 0o644, Body: "root:x:0:0::/root:/bin/sh\n"},
		"b":               {Type: "file", Mode: 0o644, Body: "lexical"},
		"dev":             {Type: "dir", Mode: 0o755},
		"dev/null":        {Type: "char", Mode: 0o666, Rdev: unix.Mkdev(1, 3)},
		"run":             {Type: "dir", Mode: 0o755},
		"run/fifo":        {Type: "fifo", Mode: 0o600},
		"x":               {Type: "dir", Mode: 0o750, Xattr: "kept"},
		"gone":            {Type: "dir", Mode: 0o755, Opaque: "y"},
		"deleted":         {Type: "char"},
		"replaced":        {Type: "dir", Mode: 0o700},
		"replaced/inside": {Type: "file", Mode: 0o644, Body: "in a real directory"},
		"twice":           {Type: "file", Mode: 0o644, Body: "second"},
	}
	got := map[string]node{}
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		if rel == "." {
			rel = ""
		}
		got[rel] = describe(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("extracted tree (-want +got):\n%s", diff)
	}

	var tool, hard unix.Stat_t
	if err := unix.Lstat(filepath.Join(dest, "bin/tool"), &tool); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(dest, "bin/hard"), &hard); err != nil {
		t.Fatal(err)
	}
	if tool.Ino != hard.Ino {
		t.Errorf("bin/hard is not a hard link of bin/tool")
	}
	if got := time.Unix(tool.Mtim.Unix()).UTC(); !got.Equal(mtime) {
		t.Errorf("bin/tool mtime: got %v, want %v", got, mtime)
	}
	var root unix.Stat_t
	if err := unix.Lstat(dest, &root); err != nil {
		t.Fatal(err)
	}
	if got := time.Unix(root.Mtim.Unix()); !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("layer root mtime: got %v, want the entry's", got)
	}
}

func TestExtractUnprivileged(t *testing.T) {
	testutil.RequiresLinux(t)
	if os.Geteuid() == 0 {
		t.Skip("runs the non-root path; as root TestExtract covers extraction")
	}
	_, dest, _ := extractSandbox(t)
	data := makeTar(t,
		ent{name: "f", typ: tar.TypeReg, body: "x", uid: 1234},
		ent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3},
	)
	if _, err := extractLayer(context.Background(), bytes.NewReader(data), dest, digestOf(data), -1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "f")); err != nil {
		t.Fatal(err)
	}
}

func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		{{name: "../x", typ: tar.TypeReg, body: "x"}},
		{{name: "a/../../x", typ: tar.TypeReg, body: "x"}},
		{{name: "a", typ: tar.TypeSymlink, link: "../outside"}, {name: "a/passwd", typ: tar.TypeReg, body: "x"}},
		{{name: "a", typ: tar.TypeSymlink, link: ".."}, {name: "a/x", typ: tar.TypeReg, body: "x"}},
		{{name: "h", typ: tar.TypeLink, link: "../../outside/passwd"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq", typ: tar.TypeReg}, {name: "d/.wh.x", typ: tar.TypeReg}},
		{{name: "f", typ: tar.TypeReg, body: "x"}, {name: "l", typ: tar.TypeLink, link: "f"}, {name: "p", typ: tar.TypeFifo}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d", typ: tar.TypeSymlink, link: ".."}, {name: "d/x", typ: tar.TypeDir}},
	}
	for _, s := range seeds {
		f.Add(makeTar(f, s...))
	}
	// Each run makes and removes a tree: on tmpfs, where there is one,
	// that costs no disk I/O and fuzzing goes many times faster.
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && unix.Access("/dev/shm", unix.W_OK) == nil {
		base = "/dev/shm"
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp(base, "caisson-fuzz-extract-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		parent, dest, _ := extractSandboxIn(t, dir)
		_, _ = extractLayer(context.Background(), bytes.NewReader(data), dest, digestOf(data), -1, nil)
		checkNothingOutside(t, parent)
		// Make the tree removable whatever modes the archive set.
		_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}
