package cdi

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/caisson/caisson/api"
)

// The ld.so.cache that ldconfig writes (glibc elf/cache.c,
// sysdeps/generic/dl-cache.h). Since glibc 2.32 only the new format is
// written; before, an old-format table ("ld.so-1.7.0") came first, the new
// one following it at an 8-byte boundary. Numbers are in the byte order of
// the host; every architecture Caisson supports is little-endian.
const (
	ldOldMagic     = "ld.so-1.7.0"
	ldOldHeaderLen = 16 // magic[11], padding to 12, nlibs uint32
	ldOldEntryLen  = 12 // flags int32, key uint32, value uint32

	ldNewMagic     = "glibc-ld.so.cache1.1"
	ldNewHeaderLen = 48 // magic+version[20], nlibs, len_strings, flags, pad[3], extension_offset, unused[3]
	ldNewEntryLen  = 24 // flags int32, key, value, osversion uint32, hwcap uint64
	ldNewFlagsOff  = 28 // the header's endianness byte

	// Endianness of the new header's flags byte (glibc 2.33 and later;
	// 0 when unset).
	ldEndianBig = 3

	// Entry flags: the low byte is the type, the next one the architecture.
	ldFlagTypeMask = 0x00ff
	ldFlagELF      = 0x0001
	ldFlagArchMask = 0xff00
)

// ldArchFlags maps GOARCH and uname names to the ld.so.cache architecture
// flag of their 64-bit libraries (FLAG_X8664_LIB64, FLAG_POWERPC_LIB64,
// FLAG_AARCH64_LIB64), and to the Debian multiarch triplet.
var ldArchFlags = map[string]struct {
	flag    int32
	triplet string
}{
	"amd64":   {0x0300, "x86_64-linux-gnu"},
	"x86_64":  {0x0300, "x86_64-linux-gnu"},
	"ppc64le": {0x0500, "powerpc64le-linux-gnu"},
	"arm64":   {0x0a00, "aarch64-linux-gnu"},
	"aarch64": {0x0a00, "aarch64-linux-gnu"},
}

// ldEntry is one library of the cache: its soname and path.
type ldEntry struct {
	flags int32
	key   string // the soname, libcuda.so.1
	value string // the path, /usr/lib/x86_64-linux-gnu/libcuda.so.1
}

// parseLDCache decodes an ld.so.cache. Anything out of bounds is an error
// wrapping api.ErrInvalid.
func parseLDCache(data []byte) ([]ldEntry, error) {
	le := binary.LittleEndian
	off := 0
	if bytes.HasPrefix(data, []byte(ldOldMagic)) {
		if len(data) < ldOldHeaderLen {
			return nil, fmt.Errorf("truncated %s header: %w", ldOldMagic, api.ErrInvalid)
		}
		n := uint64(le.Uint32(data[12:16]))
		end := uint64(ldOldHeaderLen) + n*ldOldEntryLen
		if end > uint64(len(data)) {
			return nil, fmt.Errorf("%s table of %d entries overruns the file: %w", ldOldMagic, n, api.ErrInvalid)
		}
		off = int((end + 7) &^ 7)
	}
	if off > len(data) || !bytes.HasPrefix(data[off:], []byte(ldNewMagic)) {
		return nil, fmt.Errorf("no %s table: %w", ldNewMagic, api.ErrInvalid)
	}
	cache := data[off:]
	if len(cache) < ldNewHeaderLen {
		return nil, fmt.Errorf("truncated %s header: %w", ldNewMagic, api.ErrInvalid)
	}
	if cache[ldNewFlagsOff] == ldEndianBig {
		return nil, fmt.Errorf("big-endian cache: %w", api.ErrInvalid)
	}
	n := uint64(le.Uint32(cache[20:24]))
	if uint64(ldNewHeaderLen)+n*ldNewEntryLen > uint64(len(cache)) {
		return nil, fmt.Errorf("%s table of %d entries overruns the file: %w", ldNewMagic, n, api.ErrInvalid)
	}
	entries := make([]ldEntry, 0, n)
	for i := range int(n) {
		e := cache[ldNewHeaderLen+i*ldNewEntryLen:]
		flags := int32(le.Uint32(e[0:4]))
		key, err := cString(cache, le.Uint32(e[4:8]))
		if err != nil {
			return nil, fmt.Errorf("entry %d key: %w", i, err)
		}
		value, err := cString(cache, le.Uint32(e[8:12]))
		if err != nil {
			return nil, fmt.Errorf("entry %d value: %w", i, err)
		}
		entries = append(entries, ldEntry{flags: flags, key: key, value: value})
	}
	return entries, nil
}

// cString reads the NUL-terminated string at off; string offsets of the new
// format count from the start of its header.
func cString(cache []byte, off uint32) (string, error) {
	if uint64(off) >= uint64(len(cache)) {
		return "", fmt.Errorf("string offset %d is past the end: %w", off, api.ErrInvalid)
	}
	s := cache[off:]
	end := bytes.IndexByte(s, 0)
	if end < 0 {
		return "", fmt.Errorf("string at %d is not terminated: %w", off, api.ErrInvalid)
	}
	return string(s[:end]), nil
}
