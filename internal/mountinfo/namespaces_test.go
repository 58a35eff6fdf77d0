package mountinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The plugin's namespace: / is shared (peer group 1); the plugin root's
// volume v is a loop filesystem (7:3) mounted at /var/lib/p/volumes/v/mnt
// (ID 50); an admin also bound it at /srv/x (ID 51).
const selfNS = `1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw
50 1 7:3 / /var/lib/p/volumes/v/mnt rw shared:60 - ext4 /dev/loop3 rw
51 1 7:3 / /srv/x rw shared:60 - ext4 /dev/loop3 rw
`

func mustParse(t *testing.T, s string) []Mount {
	t.Helper()
	ms, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestCopies: the copies the kernel makes of the plugin's mount (by
// propagation, directly or along chains of slaves, or by cloning the
// namespace) are told from mounts made on purpose (a container's bind,
// even one that is a slave of the plugin's mount, a bind of a subdirectory,
// a bind at the very path of the plugin's mount in a container's own root,
// another mount in the plugin's own namespace).
func TestCopies(t *testing.T) {
	self := mustParse(t, selfNS)
	nss := []Namespace{{ID: "self", Mounts: self, Self: true}}
	for _, tc := range []struct{ name, text string }{
		{"a service's namespace, slave of the host", `100 0 8:1 / / rw master:1 - ext4 /dev/sda1 rw
101 100 7:3 / /var/lib/p/volumes/v/mnt rw master:60 - ext4 /dev/loop3 rw
`},
		{"a slave of a slave that is shared", `200 0 8:1 / / rw shared:9 master:1 - ext4 /dev/sda1 rw
`},
		{"two steps down the chain", `300 0 8:1 / / rw master:9 - ext4 /dev/sda1 rw
301 300 7:3 / /var/lib/p/volumes/v/mnt rw - ext4 /dev/loop3 rw
`},
		{"a private clone", `400 0 8:1 / / rw - ext4 /dev/sda1 rw
401 400 7:3 / /var/lib/p/volumes/v/mnt rw - ext4 /dev/loop3 rw
402 400 7:3 / /tmp/holder rw - ext4 /dev/loop3 rw
`},
		{"a container", `500 0 0:90 / / rw - overlay overlay rw
501 500 7:3 / /data rw - ext4 /dev/loop3 rw
502 500 7:3 / /rslave rw master:60 - ext4 /dev/loop3 rw
503 500 7:3 /sub /sub rw - ext4 /dev/loop3 rw
`},
		{"a container with the volume at our mount point's path", `700 0 0:90 / / rw - overlay overlay rw
701 700 7:3 / /var/lib/p/volumes/v/mnt rw - ext4 /dev/loop3 rw
`},
		{"a container on a bind of the host's /var/lib", `800 0 0:90 / / rw - overlay overlay rw
801 800 8:1 /var/lib /var/lib rw - ext4 /dev/sda1 rw
802 801 7:3 / /var/lib/p/volumes/v/mnt rw - ext4 /dev/loop3 rw
`},
		{"a container whose parent mount is hidden from it", `900 1 7:3 / /var/lib/p/volumes/v/mnt rw - ext4 /dev/loop3 rw
`},
		{"a mirror at a peer of the parent, elsewhere", `600 0 8:1 / / rw - ext4 /dev/sda1 rw
601 600 8:1 /var/lib /host/var/lib rw shared:1 - ext4 /dev/sda1 rw
602 601 7:3 / /host/var/lib/p/volumes/v/mnt rw shared:60 - ext4 /dev/loop3 rw
603 601 7:3 / /host/var/lib/p/volumes/w/mnt rw - ext4 /dev/loop3 rw
`},
	} {
		nss = append(nss, Namespace{ID: tc.name, Mounts: mustParse(t, tc.text)})
	}
	ours := []Mount{self[1]}
	c := NewCopies(self, ours, nss)
	want := map[string]map[int]bool{
		"self": {50: true, 51: false},
		"a service's namespace, slave of the host":              {101: true},
		"two steps down the chain":                              {301: true},
		"a private clone":                                       {401: true, 402: false},
		"a container":                                           {501: false, 502: false, 503: false},
		"a container with the volume at our mount point's path": {701: false},
		"a container on a bind of the host's /var/lib":          {802: false},
		"a container whose parent mount is hidden from it":      {900: false},
		"a mirror at a peer of the parent, elsewhere":           {602: true, 603: false},
	}
	got := map[string]map[int]bool{}
	for _, ns := range nss {
		byID := ByID(ns.Mounts)
		for _, m := range ns.Mounts {
			if m.Major != 7 {
				continue
			}
			if got[ns.ID] == nil {
				got[ns.ID] = map[int]bool{}
			}
			got[ns.ID][m.ID] = c.Of(m, byID, ns.Self)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("copies of ours (-want +got):\n%s", diff)
	}
	// With none of ours (the plugin's mount is gone), nothing is a copy.
	none := NewCopies(self, nil, nss)
	for _, ns := range nss {
		byID := ByID(ns.Mounts)
		for _, m := range ns.Mounts {
			if none.Of(m, byID, ns.Self) {
				t.Errorf("%s: mount %d taken for a copy of nothing", ns.ID, m.ID)
			}
		}
	}
}

// TestNamespaces reads a proc tree: processes of one namespace are read
// once, a process that exits while it is read is left out, one whose
// mounts cannot be read is reported.
func TestNamespaces(t *testing.T) {
	dir := t.TempDir()
	mk := func(pid, ns, mountinfo string) {
		t.Helper()
		p := filepath.Join(dir, pid)
		if err := os.MkdirAll(filepath.Join(p, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if ns != "" {
			if err := os.Symlink(ns, filepath.Join(p, "ns", "mnt")); err != nil {
				t.Fatal(err)
			}
		}
		if mountinfo != "" {
			if err := os.WriteFile(filepath.Join(p, "mountinfo"), []byte(mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	host := "mnt:[1]"
	mk("self", host, "")
	mk("1", host, selfNS)
	mk("2", host, "")       // same namespace: not read again
	mk("10", "mnt:[2]", "") // exited between the two reads
	mk("11", "mnt:[2]", "500 0 0:90 / / rw - overlay overlay rw\n")
	mk("20", "mnt:[3]", "garbage\n") // cannot be read
	mk("30", "", "")                 // exited before
	mk("comm", "", "")               // not a process
	old := procDir
	procDir = dir
	t.Cleanup(func() { procDir = old })
	nss, unreadable, err := Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	type short struct {
		ID     string
		PIDs   []int
		Mounts int
		Self   bool
	}
	var got []short
	for _, ns := range nss {
		got = append(got, short{ns.ID, ns.PIDs, len(ns.Mounts), ns.Self})
	}
	want := []short{{host, []int{1, 2}, 3, true}, {"mnt:[2]", []int{11}, 1, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	if len(unreadable) != 1 || unreadable[0].PID != 20 {
		t.Errorf("unreadable = %v, want process 20", unreadable)
	}
	// This machine's own.
	procDir = old
	nss, _, err = Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	selfSeen := false
	for _, ns := range nss {
		selfSeen = selfSeen || ns.Self
	}
	if !selfSeen {
		t.Error("the caller's namespace is not among those read")
	}
}
