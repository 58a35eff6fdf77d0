// Package cni is the network/cni isolator: it attaches containers to CNI
// networks through libcni (spec 1.1) with network namespaces it owns.
//
// For each container with named networks, Prepare checkpoints what it is
// about to do (the exact network configuration of each attachment, the port
// mappings and bandwidth it passes as capability arguments), pins a new
// network namespace under the run dir (a bind mount made by util-linux's
// unshare, so no thread of this process ever switches namespaces), ADDs each
// network in order as eth0, eth1, ..., writes the container's hosts,
// hostname and resolv.conf, and hands the runtime the namespace by path.
// Cleanup DELs every attachment in reverse with the checkpointed
// configuration and the capability arguments read back from the libcni
// cache, then removes the namespace: it works after the configuration file
// changed or disappeared and after a reboot took the namespace away. A failed
// ADD is always followed by DEL. Before each plugin of an ADD runs, the
// result of the chain so far is checkpointed (pluginExec sees each plugin's
// prevResult), and a DEL for which libcni has no cached result (the ADD
// never finished) gets it as its prevResult, so plugins that find their
// state by address (firewall) free it. Recover DELs what orphans hold and
// what stale entries of the libcni cache (which lives under the state dir,
// not the shared /var/lib/cni) name.
//
// Networks are shared by the work dirs that share a config dir, and with
// other runtimes: Recover runs GCNetworkList only on the networks this work
// dir created whose leases all live under its state dir, counting as valid
// every lease of a container not known to be gone, and Remove refuses a
// network while a lease names a container this work dir does not know
// (see leases.go).
//
// Create validates a bridge network's subnet and bridge; the bridge device
// is caisson's, and deleted by Remove, only if caisson created it (see
// bridge.go).
package cni
