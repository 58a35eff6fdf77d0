package cni

import (
	"net"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func TestHostsFile(t *testing.T) {
	got := string(hostsFile("web", []net.IP{net.ParseIP("10.1.0.2"), net.ParseIP("fd00::2")}))
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n" +
		"ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n10.1.0.2\tweb\nfd00::2\tweb\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestResolvConf(t *testing.T) {
	got := string(resolvConf(&types.DNS{Nameservers: []string{"10.0.0.53", "fd00::53"}, Domain: "corp", Options: []string{"ndots:2"}}))
	if want := "nameserver 10.0.0.53\nnameserver fd00::53\nsearch corp\noptions ndots:2\n"; got != want {
		t.Errorf("resolvConf = %q, want %q", got, want)
	}
	got = string(filterResolvConf([]byte("# host\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.53\nsearch example.test\n")))
	want := "# host\nnameserver 192.0.2.53\nsearch example.test\n# 2 loopback name server(s) of the host left out: unreachable from the container\n"
	if got != want {
		t.Errorf("filterResolvConf = %q, want %q", got, want)
	}
}

func TestParseNetDev(t *testing.T) {
	data := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0
  eth1:      10       1    0    0    0     0          0         0       20       2    0    0    0     0       0          0
`
	var u api.Usage
	if err := parseNetDev([]byte(data), &u); err != nil {
		t.Fatal(err)
	}
	if u.NetRxBytes != 5010 || u.NetRxPackets != 41 || u.NetRxErrors != 1 || u.NetRxDropped != 2 ||
		u.NetTxBytes != 3020 || u.NetTxPackets != 32 || u.NetTxErrors != 3 || u.NetTxDropped != 4 || len(u.Interfaces) != 3 {
		t.Errorf("usage = %+v", u)
	}
	if err := parseNetDev([]byte("h\nh\neth0: 1 2 3\n"), &u); err == nil {
		t.Error("a short line was accepted")
	}
}
