package containerizer

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/caisson/caisson/api"
)

// execUser is a resolved -u/--user.
type execUser struct {
	UID, GID   uint32
	Additional []uint32
	Home       string
}

// resolveUser resolves "NAME", "UID", "NAME:GROUP" or "UID:GID" against the
// passwd and group files inside rootfs. The files are opened through
// securejoin, so a symlink in the image (even an absolute one) cannot point
// the lookup at the host's files. A numeric uid with no passwd entry is
// allowed, with gid 0, as Docker does.
func resolveUser(rootfs, spec string) (*execUser, error) {
	u := &execUser{Home: "/"}
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return nil, fmt.Errorf("user %q is not NAME, UID, NAME:GROUP or UID:GID: %w", spec, api.ErrInvalid)
	}
	passwd, err := readDBFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
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
	groups, err := readDBFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	if hasGroup {
		gid, gnumeric := parseID(groupPart)
		gfound := gnumeric
		for _, f := range groups {
			if len(f) >= 3 && !gnumeric && f[0] == groupPart {
				gid, gfound = mustID(f[2]), true
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

func mustID(s string) uint32 { n, _ := parseID(s); return n }

// readDBFile reads a colon-separated file such as /etc/passwd from inside
// rootfs. A missing file is an empty database.
func readDBFile(rootfs, name string) ([][]string, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}
