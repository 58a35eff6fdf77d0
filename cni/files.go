package cni

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/caisson/caisson/internal/atomicfile"
)

type containerFile struct{ src, dst string }

// writeFiles writes the container's hostname, hosts and resolv.conf, to be
// bind-mounted over the ones in its root filesystem.
func (iso *Isolator) writeFiles(st *state, nets []*Network) ([]containerFile, error) {
	dir := iso.containerDir(st.ID)
	var ips []net.IP
	var dns *types.DNS
	for _, a := range st.Attachments {
		var r types100.Result
		if json.Unmarshal(a.Result, &r) != nil {
			continue
		}
		for _, ip := range r.IPs {
			ips = append(ips, ip.Address.IP)
		}
		if dns == nil && len(r.DNS.Nameservers) > 0 {
			d := r.DNS
			dns = &d
		}
	}
	if dns == nil {
		for _, n := range nets {
			if n.DNS != nil && len(n.DNS.Nameservers) > 0 {
				dns = n.DNS
				break
			}
		}
	}
	var resolv []byte
	if dns != nil {
		resolv = resolvConf(dns)
	} else {
		host, err := os.ReadFile(iso.cfg.HostResolvConf)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		resolv = filterResolvConf(host)
	}
	files := []struct {
		name, dst string
		data      []byte
	}{
		{"hostname", "/etc/hostname", []byte(st.Hostname + "\n")},
		{"hosts", "/etc/hosts", hostsFile(st.Hostname, ips)},
		{"resolv.conf", "/etc/resolv.conf", resolv},
	}
	var out []containerFile
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := atomicfile.Write(p, f.data, 0o644, false); err != nil {
			return nil, err
		}
		out = append(out, containerFile{src: p, dst: f.dst})
	}
	return out, nil
}

// hostsFile maps localhost and the container's addresses (IPv4 and IPv6)
// to its name.
func hostsFile(hostname string, ips []net.IP) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return b.Bytes()
}

// resolvConf renders a DNS configuration.
func resolvConf(d *types.DNS) []byte {
	var b bytes.Buffer
	for _, s := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	search := d.Search
	if len(search) == 0 && d.Domain != "" {
		search = []string{d.Domain}
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return b.Bytes()
}

// filterResolvConf keeps the host's resolver configuration but drops
// loopback name servers (a local resolver such as systemd-resolved's stub
// cannot be reached from the container's namespace).
func filterResolvConf(host []byte) []byte {
	var b bytes.Buffer
	dropped := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip != nil && ip.IsLoopback() {
				dropped++
				continue
			}
		}
		b.WriteString(line + "\n")
	}
	if dropped > 0 {
		fmt.Fprintf(&b, "# %d loopback name server(s) of the host left out: unreachable from the container\n", dropped)
	}
	return b.Bytes()
}
