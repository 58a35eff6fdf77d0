package cdi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

const testDriverVersion = "550.54.15"

// ld.so.cache flags of the test entries: ELF libc6 libraries of each arch.
const (
	flagI386    = 0x0003
	flagX8664   = 0x0303
	flagPPC64LE = 0x0503
	flagAArch64 = 0x0a03
)

type testLDEntry struct {
	flags      int32
	key, value string
}

// encodeLDCache writes an ld.so.cache as glibc's ldconfig does: the
// "glibc-ld.so.cache1.1" table, preceded when compat is set by an old
// "ld.so-1.7.0" table and padding to 8 bytes. String offsets of the new
// table count from its header.
func encodeLDCache(entries []testLDEntry, compat bool) []byte {
	le := binary.LittleEndian
	var strtab []byte
	base := ldNewHeaderLen + len(entries)*ldNewEntryLen
	type offs struct{ key, value uint32 }
	offsets := make([]offs, len(entries))
	for i, e := range entries {
		offsets[i].key = uint32(base + len(strtab))
		strtab = append(append(strtab, e.key...), 0)
		offsets[i].value = uint32(base + len(strtab))
		strtab = append(append(strtab, e.value...), 0)
	}
	nw := []byte(ldNewMagic)
	nw = le.AppendUint32(nw, uint32(len(entries)))
	nw = le.AppendUint32(nw, uint32(len(strtab)))
	nw = append(nw, 2, 0, 0, 0) // little-endian, padding
	nw = le.AppendUint32(nw, 0) // extension offset
	nw = append(nw, make([]byte, 12)...)
	for i, e := range entries {
		nw = le.AppendUint32(nw, uint32(e.flags))
		nw = le.AppendUint32(nw, offsets[i].key)
		nw = le.AppendUint32(nw, offsets[i].value)
		nw = le.AppendUint32(nw, 0) // osversion
		nw = le.AppendUint64(nw, 0) // hwcap
	}
	nw = append(nw, strtab...)
	if !compat {
		return nw
	}
	old := append([]byte(ldOldMagic), 0)
	old = le.AppendUint32(old, uint32(len(entries)))
	for _, e := range entries {
		// The old table's own strings are not written: nothing reads them.
		old = le.AppendUint32(old, uint32(e.flags))
		old = le.AppendUint32(old, 0)
		old = le.AppendUint32(old, 0)
	}
	for len(old)%8 != 0 {
		old = append(old, 0)
	}
	return append(old, nw...)
}

// testLDEntries are a multiarch host's cache: 64-bit x86 and 32-bit copies
// of the driver, a ppc64le copy (as a shared image for both would have), and
// libc.
var testLDEntries = []testLDEntry{
	{flagX8664, "libnvidia-ml.so.1", "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"},
	{flagI386, "libnvidia-ml.so.1", "/usr/lib/i386-linux-gnu/libnvidia-ml.so.1"},
	{flagPPC64LE, "libnvidia-ml.so.1", "/usr/lib/powerpc64le-linux-gnu/libnvidia-ml.so.1"},
	{flagX8664, "libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"},
	{flagI386, "libcuda.so.1", "/usr/lib/i386-linux-gnu/libcuda.so.1"},
	{flagPPC64LE, "libcuda.so.1", "/usr/lib/powerpc64le-linux-gnu/libcuda.so.1"},
	{flagX8664, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
}

// fakeDriverRoot lays out a driver installation in a temporary directory.
// Libraries are empty files; the persistenced socket is a plain file.
func fakeDriverRoot(t *testing.T, cache []byte) string {
	t.Helper()
	root := t.TempDir()
	v := testDriverVersion
	files := []string{
		// x86-64: the driver, an older driver's leftover, a graphics library
		// that is not mounted, and a library the cache does not list but
		// that lies beside those it does.
		"usr/lib/x86_64-linux-gnu/libcuda.so." + v,
		"usr/lib/x86_64-linux-gnu/libcuda.so.535.161.08",
		"usr/lib/x86_64-linux-gnu/libnvidia-ml.so." + v,
		"usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so." + v,
		"usr/lib/x86_64-linux-gnu/libnvidia-pkcs11-openssl3.so." + v,
		"usr/lib/x86_64-linux-gnu/libnvidia-glcore.so." + v,
		"lib/x86_64-linux-gnu/libc.so.6",
		"usr/lib/i386-linux-gnu/libcuda.so." + v,
		"usr/lib/i386-linux-gnu/libnvidia-ml.so." + v,
		"usr/lib/powerpc64le-linux-gnu/libcuda.so." + v,
		"usr/lib/powerpc64le-linux-gnu/libnvidia-ml.so." + v,
		"usr/bin/nvidia-smi",
		"bin/nvidia-smi",
		"bin/nvidia-debugdump",
		"lib/firmware/nvidia/" + v + "/gsp_ga10x.bin",
		"lib/firmware/nvidia/" + v + "/gsp_tu10x.bin",
		"lib/firmware/nvidia/" + v + "/README",
		"lib/firmware/nvidia/535.161.08/gsp_ga10x.bin",
		"run/nvidia-persistenced/socket",
	}
	for _, f := range files {
		mkfile(t, filepath.Join(root, f))
	}
	links := map[string]string{
		"usr/lib/x86_64-linux-gnu/libcuda.so.1":                  "libcuda.so." + v,
		"usr/lib/x86_64-linux-gnu/libcuda.so":                    "libcuda.so.1",
		"usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1":             "libnvidia-ml.so." + v,
		"usr/lib/x86_64-linux-gnu/libnvidia-glcore.so.1":         "libnvidia-glcore.so." + v,
		"usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1": "libnvidia-ptxjitcompiler.so.535.161.08",
		"usr/lib/i386-linux-gnu/libcuda.so.1":                    "libcuda.so." + v,
		"usr/lib/powerpc64le-linux-gnu/libcuda.so.1":             "libcuda.so." + v,
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp/nvidia-mps"), 0o755); err != nil {
		t.Fatal(err)
	}
	if cache != nil {
		writeLDCache(t, root, cache)
	}
	return root
}

func writeLDCache(t *testing.T, root string, cache []byte) {
	t.Helper()
	p := filepath.Join(root, "etc/ld.so.cache")
	mkfile(t, p)
	if err := os.WriteFile(p, cache, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkfile(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// under joins relative paths to root.
func under(root string, rel ...string) []string {
	out := make([]string, len(rel))
	for i, r := range rel {
		out[i] = filepath.Join(root, r)
	}
	return out
}

// commonFiles are the files every arch of fakeDriverRoot shares.
func commonFiles(root string) Files {
	v := testDriverVersion
	return Files{
		Root:     root,
		Binaries: under(root, "usr/bin/nvidia-smi", "bin/nvidia-debugdump"),
		Firmware: under(root, "lib/firmware/nvidia/"+v+"/gsp_ga10x.bin", "lib/firmware/nvidia/"+v+"/gsp_tu10x.bin"),
		Sockets:  under(root, "run/nvidia-persistenced/socket", "tmp/nvidia-mps"),
	}
}

func TestDriverFiles(t *testing.T) {
	v := testDriverVersion
	x86 := func(root string) Files {
		f := commonFiles(root)
		f.Libraries = under(root,
			"usr/lib/x86_64-linux-gnu/libcuda.so."+v,
			"usr/lib/x86_64-linux-gnu/libnvidia-ml.so."+v,
			"usr/lib/x86_64-linux-gnu/libnvidia-pkcs11-openssl3.so."+v,
			"usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so."+v)
		f.Links = under(root,
			"usr/lib/x86_64-linux-gnu/libcuda.so.1",
			"usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")
		return f
	}
	ppc := func(root string) Files {
		f := commonFiles(root)
		f.Libraries = under(root,
			"usr/lib/powerpc64le-linux-gnu/libcuda.so."+v,
			"usr/lib/powerpc64le-linux-gnu/libnvidia-ml.so."+v)
		f.Links = under(root, "usr/lib/powerpc64le-linux-gnu/libcuda.so.1")
		return f
	}
	for _, tc := range []struct {
		name  string
		cache []byte
		arch  string
		want  func(root string) Files
	}{
		{"x86-64 from the cache", encodeLDCache(testLDEntries, false), "amd64", x86},
		{"x86-64 uname name", encodeLDCache(testLDEntries, false), "x86_64", x86},
		{"compat header first", encodeLDCache(testLDEntries, true), "amd64", x86},
		{"ppc64le from the cache", encodeLDCache(testLDEntries, false), "ppc64le", ppc},
		{"ppc64le compat", encodeLDCache(testLDEntries, true), "ppc64le", ppc},
		// The cache lists no aarch64 library: none is mounted, even though
		// lib dirs of other arches hold the driver.
		{"arm64 not in the cache", encodeLDCache(testLDEntries, false), "arm64", commonFiles},
		{"no cache: standard dirs of x86-64", nil, "amd64", x86},
		{"no cache: standard dirs of ppc64le", nil, "ppc64le", ppc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeDriverRoot(t, tc.cache)
			got, err := DriverFiles(root, v, tc.arch)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want(root), got); diff != "" {
				t.Errorf("DriverFiles (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDriverFilesNoDriver(t *testing.T) {
	root := t.TempDir()
	got, err := DriverFiles(root, testDriverVersion, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Files{Root: root}, got); diff != "" {
		t.Errorf("DriverFiles (-want +got):\n%s", diff)
	}

	t.Run("cache without the driver", func(t *testing.T) {
		writeLDCache(t, root, encodeLDCache([]testLDEntry{{flagX8664, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}}, false))
		got, err := DriverFiles(root, testDriverVersion, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Files{Root: root}, got); diff != "" {
			t.Errorf("DriverFiles (-want +got):\n%s", diff)
		}
	})
}

func TestDriverFilesInvalid(t *testing.T) {
	good := encodeLDCache(testLDEntries, false)
	bigEndian := bytes.Clone(good)
	bigEndian[ldNewFlagsOff] = ldEndianBig
	badOffset := bytes.Clone(good)
	binary.LittleEndian.PutUint32(badOffset[ldNewHeaderLen+4:], 1<<30)
	tooMany := bytes.Clone(good)
	binary.LittleEndian.PutUint32(tooMany[20:], 1<<20)
	oldTooMany := encodeLDCache(testLDEntries, true)
	binary.LittleEndian.PutUint32(oldTooMany[12:], 1<<30)
	unterminated := encodeLDCache([]testLDEntry{{flagX8664, "libcuda.so.1", "/usr/lib/libcuda.so.1"}}, false)
	unterminated = unterminated[:len(unterminated)-1]

	for _, tc := range []struct {
		name  string
		cache []byte
	}{
		{"empty", []byte{}},
		{"garbage", []byte("this is not an ld.so.cache, not at all, not even close")},
		{"old format only", append(append([]byte(ldOldMagic), 0), 0, 0, 0, 0)},
		{"truncated header", good[:30]},
		{"truncated entries", good[:ldNewHeaderLen+10]},
		{"big-endian", bigEndian},
		{"string offset out of range", badOffset},
		{"too many entries", tooMany},
		{"old table too long", oldTooMany},
		{"unterminated string", unterminated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeLDCache(t, root, tc.cache)
			p := filepath.Join(root, "etc/ld.so.cache")
			_, err := DriverFiles(root, testDriverVersion, "amd64")
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("DriverFiles = %v, want an error wrapping api.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
		})
	}

	for _, tc := range []struct{ name, version, arch string }{
		{"unknown arch", testDriverVersion, "s390x"},
		{"no version", "", "amd64"},
		{"version with a slash", "../550", "amd64"},
		{"version with a glob", "550.*", "amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DriverFiles(t.TempDir(), tc.version, tc.arch)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("DriverFiles = %v, want an error wrapping api.ErrInvalid", err)
			}
		})
	}
}

func TestParseLDCache(t *testing.T) {
	for _, compat := range []bool{false, true} {
		got, err := parseLDCache(encodeLDCache(testLDEntries, compat))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]ldEntry, len(testLDEntries))
		for i, e := range testLDEntries {
			want[i] = ldEntry(e)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(ldEntry{})); diff != "" {
			t.Errorf("compat=%v (-want +got):\n%s", compat, diff)
		}
	}
}

// FuzzParseLDCache checks that no input makes the parser panic or read out
// of bounds, and that every refusal wraps api.ErrInvalid.
func FuzzParseLDCache(f *testing.F) {
	f.Add(encodeLDCache(testLDEntries, false))
	f.Add(encodeLDCache(testLDEntries, true))
	f.Add(encodeLDCache([]testLDEntry{{flagAArch64, "libcuda.so.1", "/usr/lib/aarch64-linux-gnu/libcuda.so.1"}}, false))
	f.Add([]byte(ldOldMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := parseLDCache(data); err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("error %v does not wrap api.ErrInvalid", err)
		}
	})
}
