package driver

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/caisson/caisson/api"
)

// Volume types (-o type=).
const (
	TypeDir   = "dir"
	TypeLoop  = "loop"
	TypeTmpfs = "tmpfs"
	TypeBind  = "bind"
)

// Filesystems a loop volume can be formatted with, and the smallest image
// each mkfs accepts.
var loopFS = map[string]int64{"ext4": 2 << 20, "xfs": 300 << 20}

// Options are a volume's parsed creation options, kept in the state file.
type Options struct {
	Type string `json:"type"`
	// Size in bytes; 0 means none.
	Size int64   `json:"size,omitempty"`
	UID  *int    `json:"uid,omitempty"`
	GID  *int    `json:"gid,omitempty"`
	Mode *uint32 `json:"mode,omitempty"`
	// Keep keeps the data on Remove (always true for bind volumes).
	Keep bool `json:"keep,omitempty"`
	// Path is a bind volume's host directory.
	Path string `json:"path,omitempty"`
	// FS is a loop volume's filesystem.
	FS string `json:"fs,omitempty"`
}

// optionHelp is listed after an unknown option.
const optionHelp = "type=dir|loop|tmpfs|bind, size=SIZE, uid=N, gid=N, mode=OCTAL, keep=true|false, path=DIR (bind), fs=ext4|xfs (loop)"

// parseOptions checks -o options against the volume type; binds says which
// host directories a bind volume may be.
func parseOptions(raw map[string]string, binds *bindPolicy) (Options, error) {
	o := Options{Type: TypeDir}
	bad := func(k, why string) (Options, error) {
		return o, fmt.Errorf("invalid option %s=%q: %s: %w", k, raw[k], why, api.ErrInvalid)
	}
	if v, ok := raw["type"]; ok {
		switch v {
		case TypeDir, TypeLoop, TypeTmpfs, TypeBind:
			o.Type = v
		default:
			return bad("type", "want dir, loop, tmpfs or bind")
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := raw[k]
		switch k {
		case "type":
		case "size":
			n, err := api.ParseSize(v)
			if err != nil || n <= 0 {
				return bad(k, "want a positive size such as 512m or 2g")
			}
			o.Size = n
		case "uid", "gid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 1<<32-1 {
				return bad(k, "want a numeric id from 0 to 4294967294")
			}
			id := int(n)
			if k == "uid" {
				o.UID = &id
			} else {
				o.GID = &id
			}
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return bad(k, "want octal permissions such as 0750")
			}
			m := uint32(n)
			o.Mode = &m
		case "keep":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad(k, "want true or false")
			}
			o.Keep = b
		case "path":
			if o.Type != TypeBind {
				return bad(k, "only type=bind volumes take a path")
			}
			p, err := binds.check(v)
			if err != nil {
				return o, fmt.Errorf("invalid option %s=%q: %w", k, v, err)
			}
			o.Path = p
		case "fs":
			if o.Type != TypeLoop {
				return bad(k, "only type=loop volumes take a filesystem")
			}
			if _, ok := loopFS[v]; !ok {
				return bad(k, "want ext4 or xfs")
			}
			o.FS = v
		default:
			return o, fmt.Errorf("unknown option %q (known: %s): %w", k, optionHelp, api.ErrInvalid)
		}
	}
	switch o.Type {
	case TypeLoop:
		if o.FS == "" {
			o.FS = "ext4"
		}
		if o.Size == 0 {
			return o, fmt.Errorf("type=loop needs the option size= (the size of its disk image), e.g. size=1g: %w", api.ErrInvalid)
		}
		if min := loopFS[o.FS]; o.Size < min {
			return bad("size", fmt.Sprintf("a loop image formatted %s must be at least %s", o.FS, api.FormatSize(uint64(min))))
		}
	case TypeTmpfs:
		if o.Keep {
			return bad("keep", "a tmpfs volume's data is in memory and cannot be kept")
		}
	case TypeBind:
		if o.Path == "" {
			return o, fmt.Errorf("type=bind needs the option path=/existing/host/dir: %w", api.ErrInvalid)
		}
		if o.Size > 0 {
			return bad("size", "a bind volume is an existing directory and cannot be size-limited; use type=loop")
		}
		if _, ok := raw["keep"]; ok && !o.Keep {
			return bad("keep", "a bind volume's data is never deleted")
		}
		o.Keep = true
	}
	return o, nil
}
