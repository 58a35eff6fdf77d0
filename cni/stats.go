package cni

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// parseNetDev reads /proc/net/dev: two header lines, then per interface
// "name: rx bytes packets errs drop fifo frame compressed multicast tx bytes
// packets errs drop fifo colls carrier compressed". Loopback is listed but
// left out of the totals.
func parseNetDev(data []byte, u *api.Usage) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		if line <= 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return fmt.Errorf("net/dev line %d: no interface name", line)
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return fmt.Errorf("net/dev line %d: %d fields, want 16", line, len(f))
		}
		var v [16]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return fmt.Errorf("net/dev line %d: %w", line, err)
			}
			v[i] = n
		}
		iu := api.InterfaceUsage{
			Name:    strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11],
		}
		u.Interfaces = append(u.Interfaces, iu)
		if iu.Name == "lo" {
			continue
		}
		u.NetRxBytes += iu.RxBytes
		u.NetRxPackets += iu.RxPackets
		u.NetRxErrors += iu.RxErrors
		u.NetRxDropped += iu.RxDropped
		u.NetTxBytes += iu.TxBytes
		u.NetTxPackets += iu.TxPackets
		u.NetTxErrors += iu.TxErrors
		u.NetTxDropped += iu.TxDropped
	}
	return sc.Err()
}
