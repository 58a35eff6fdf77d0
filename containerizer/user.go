package containerizer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/safefile"
)

// maxDBFile bounds the passwd and group files read from an image.
const maxDBFile = 16 << 20

// execUser is a resolved -u/--user.
type execUser struct {
	UID, GID   uint32
	Additional []uint32
	Home       string
}

// resolveUser resolves "NAME", "UID", "NAME:GROUP" or "UID:GID" against the
// passwd and group files inside rootfs. The files are untrusted (see
// readDBFile). A numeric uid with no passwd entry is allowed, with gid 0, as
// Docker does.
func resolveUser(rootfs, spec string) (*execUser, error) {
	if _, _, err := splitUser(spec); err != nil {
		return nil, err
	}
	passwd, err := readDBFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	groups, err := readDBFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	return lookupUser(passwd, groups, spec)
}

// splitUser splits a user spec into its user and group parts; "" is root.
func splitUser(spec string) (userPart, groupPart string, err error) {
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return "", "", fmt.Errorf("user %q is not NAME, UID, NAME:GROUP or UID:GID: %w", spec, api.ErrInvalid)
	}
	return userPart, groupPart, nil
}

// lookupUser resolves spec against parsed passwd and group databases.
func lookupUser(passwd, groups [][]string, spec string) (*execUser, error) {
	u := &execUser{Home: "/"}
	userPart, groupPart, err := splitUser(spec)
	if err != nil {
		return nil, err
	}
	hasGroup := groupPart != ""
	uid, numeric := parseID(userPart)
	found := false
	var name string
	for _, f := range passwd {
		if len(f) < 7 {
			continue
		}
		fuid, ok := parseID(f[2])
		if !ok {
			continue
		}
		if (numeric && fuid == uid) || (!numeric && f[0] == userPart) {
			fgid, _ := parseID(f[3])
			u.UID, u.GID, u.Home, name, found = fuid, fgid, f[5], f[0], true
			break
		}
	}
	if !found {
		if !numeric {
			return nil, fmt.Errorf("unable to find user %s: no matching entries in passwd file: %w", userPart, api.ErrNotFound)
		}
		u.UID, u.GID = uid, 0
	}
	if hasGroup {
		gid, gnumeric := parseID(groupPart)
		gfound := gnumeric
		for _, f := range groups {
			if len(f) < 3 || gnumeric || f[0] != groupPart {
				continue
			}
			if id, ok := parseID(f[2]); ok {
				gid, gfound = id, true
				break
			}
		}
		if !gfound {
			return nil, fmt.Errorf("unable to find group %s: no matching entries in group file: %w", groupPart, api.ErrNotFound)
		}
		u.GID = gid
	}
	// As Docker does, the primary group is also the first supplementary
	// group, followed by the groups that list the user as a member.
	u.Additional = []uint32{u.GID}
	if name != "" && !hasGroup {
		for _, f := range groups {
			if len(f) < 4 {
				continue
			}
			for _, member := range strings.Split(f[3], ",") {
				if member == name {
					if gid, ok := parseID(f[2]); ok && !containsID(u.Additional, gid) {
						u.Additional = append(u.Additional, gid)
					}
				}
			}
		}
	}
	return u, nil
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// readDBFile reads a colon-separated file such as /etc/passwd from inside
// rootfs. A missing file is an empty database. The image controls the
// file: it is resolved inside rootfs (a symbolic link, even an absolute
// one, cannot reach the host's files), and must be a regular file of at
// most maxDBFile bytes; a FIFO, a device, a directory or a larger file is
// refused before anything blocks or fills memory.
func readDBFile(rootfs, name string) ([][]string, error) {
	data, err := safefile.ReadFileInRoot(rootfs, name, maxDBFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image's %s: %w", name, err)
	}
	return parseDB(data)
}

// parseDB splits a colon-separated database into the fields of each line,
// skipping blank lines and comments.
func parseDB(data []byte) ([][]string, error) {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}
