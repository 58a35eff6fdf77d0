package mountinfo

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sample = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
30 22 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,size=1024k
41 22 8:1 /var/lib/vol/data /mnt/my\040data rw master:1 - ext4 /dev/sda1 rw
42 22 7:3 / /var/lib/vol/mnt rw - xfs /dev/loop3 rw,attr2,inode64,prjquota
`

func TestParse(t *testing.T) {
	ms, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := Mount{ID: 41, Parent: 22, Major: 8, Minor: 1, Root: "/var/lib/vol/data", MountPoint: "/mnt/my data",
		Options: "rw", Optional: []string{"master:1"}, FSType: "ext4", Source: "/dev/sda1", SuperOpts: "rw"}
	if diff := cmp.Diff(want, ms[2]); diff != "" {
		t.Errorf("line 3 (-want +got):\n%s", diff)
	}
	if ms[0].PeerGroup() != 1 || ms[0].Master() != 0 || ms[2].PeerGroup() != 0 || ms[2].Master() != 1 || ms[3].PeerGroup() != 0 {
		t.Errorf("peer groups: %v %v %v", ms[0].Optional, ms[2].Optional, ms[3].Optional)
	}
	for _, tc := range []struct {
		path string
		want int
	}{{"/var/lib/vol/mnt/x", 42}, {"/var/lib/vol/mnt", 42}, {"/var/lib/vol/mn", 22}, {"/run", 30}, {"/", 22}} {
		if m, ok := Containing(ms, tc.path); !ok || m.ID != tc.want {
			t.Errorf("Containing(%q) = %d, %v; want %d", tc.path, m.ID, ok, tc.want)
		}
	}
	if !IsMountPoint(ms, "/run") || IsMountPoint(ms, "/var") {
		t.Error("IsMountPoint")
	}
	if _, err := Parse(strings.NewReader("garbage line\n")); err == nil {
		t.Error("garbage parsed")
	}
	self, err := Read(0)
	if err != nil || len(self) == 0 {
		t.Fatalf("Read(0) = %d mounts, %v", len(self), err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Parse(strings.NewReader(s))
	})
}

// shadowed lists /srv/vols twice: the later mount hides the earlier.
const shadowed = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
101 27 7:0 / /srv/vols rw,relatime shared:40 - xfs /dev/loop0 rw,attr2,inode64,logbufs=8,logbsize=32k,prjquota
102 101 7:1 / /srv/vols/inner rw,relatime - xfs /dev/loop1 rw,attr2,inode64,noquota
103 27 7:2 / /srv/my\040vols rw - xfs /dev/loop2 rw,pqnoenforce
104 27 7:3 / /srv/vols rw - xfs /dev/loop3 rw,prjquota
`

func TestContaining(t *testing.T) {
	ms, err := Parse(strings.NewReader(shadowed))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, mountpoint, source, fstype string
	}{
		{"/", "/", "/dev/vda", "ext4"},
		{"/srv", "/", "/dev/vda", "ext4"},
		{"/srv/volsx", "/", "/dev/vda", "ext4"},
		{"/srv/vols", "/srv/vols", "/dev/loop3", "xfs"},
		{"/srv/vols/a/b", "/srv/vols", "/dev/loop3", "xfs"},
		{"/srv/vols/inner/x", "/srv/vols/inner", "/dev/loop1", "xfs"},
		{"/srv/my vols/x", "/srv/my vols", "/dev/loop2", "xfs"},
		{"/proc/1", "/proc", "proc", "proc"},
	} {
		m, ok := Containing(ms, tc.path)
		got := []any{ok, m.MountPoint, m.Source, m.FSType}
		if diff := cmp.Diff([]any{true, tc.mountpoint, tc.source, tc.fstype}, got); diff != "" {
			t.Errorf("Containing(%s) (-want +got):\n%s", tc.path, diff)
		}
	}
	for _, p := range []string{"relative", "srv/vols", ""} {
		if m, ok := Containing(ms, p); ok {
			t.Errorf("Containing(%q) = %q, want none for a relative path", p, m.MountPoint)
		}
	}
	if _, ok := Containing(nil, "/"); ok {
		t.Error("Containing of no mounts found one")
	}
}

func TestParseEmptySource(t *testing.T) {
	// mount -t tmpfs "" /mnt/e: the kernel writes an empty source field.
	ms, err := Parse(strings.NewReader("50 22 0:60 / /mnt/e rw,relatime - tmpfs  rw,size=1024k\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Mount{ID: 50, Parent: 22, Major: 0, Minor: 60, Root: "/", MountPoint: "/mnt/e",
		Options: "rw,relatime", FSType: "tmpfs", Source: "", SuperOpts: "rw,size=1024k"}
	if diff := cmp.Diff([]Mount{want}, ms); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, line := range []string{
		"bad line",
		"105 27 x:3 / /bad rw - xfs /dev/loop3 rw",
		"105 27 7 / /bad rw - xfs /dev/loop3 rw",
		"105 27 7:99999999999 / /bad rw - xfs /dev/loop3 rw",
		"x 27 7:3 / /bad rw - xfs /dev/loop3 rw",
		"105 x 7:3 / /bad rw - xfs /dev/loop3 rw",
		"105 27 7:3 / /bad - xfs /dev/loop3 rw",
		"105 27 7:3 / /bad rw - xfs",
		"105 27 7:3 / /bad rw xfs /dev/loop3 rw",
	} {
		if ms, err := Parse(strings.NewReader(shadowed + line + "\n")); err == nil {
			t.Errorf("Parse of %q = %+v, want an error", line, ms[len(ms)-1])
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:  "/a b",
		`/a\011b`:  "/a\tb",
		`/a\134b`:  `/a\b`,
		`/a\012`:   "/a\n",
		`/a\04`:    `/a\04`,
		`/a\999`:   `/a\999`,
		`/plain`:   "/plain",
		`\`:        `\`,
		`\040\040`: "  ",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzContaining(f *testing.F) {
	f.Add(shadowed, "/srv/vols/x")
	f.Add("1 2 3:4 / /a\\040b rw - xfs src opts\n", "/a b/c")
	f.Fuzz(func(t *testing.T, text, path string) {
		ms, err := Parse(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.FSType == "" || m.MountPoint == "" {
				t.Errorf("empty field in %+v", m)
			}
		}
		m, ok := Containing(ms, path)
		if !ok {
			return
		}
		mp := m.MountPoint
		if !strings.HasPrefix(path, "/") || !(mp == "/" || path == mp || strings.HasPrefix(path, mp+"/")) {
			t.Errorf("Containing(%q) = %q, which does not hold it", path, mp)
		}
	})
}

func TestUnder(t *testing.T) {
	all, err := Under("/")
	if err != nil || !slices.Contains(all, "/") {
		t.Fatalf("Under(/) = %v, %v; want / among them", all, err)
	}
	for i := 1; i < len(all); i++ {
		if strings.Count(all[i-1], "/") < strings.Count(all[i], "/") {
			t.Fatalf("Under(/) not deepest first: %q before %q", all[i-1], all[i])
		}
	}
	if none, err := Under(t.TempDir()); err != nil || len(none) != 0 {
		t.Errorf("Under(an empty temp dir) = %v, %v", none, err)
	}
}
