package mountinfo

import (
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
		Options: "rw", FSType: "ext4", Source: "/dev/sda1", SuperOpts: "rw"}
	if diff := cmp.Diff(want, ms[2]); diff != "" {
		t.Errorf("line 3 (-want +got):\n%s", diff)
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
