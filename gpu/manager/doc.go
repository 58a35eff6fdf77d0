// Package manager is the static side of Caisson's GPU support: it knows
// this host's GPUs, which container holds which, and which are unhealthy,
// and keeps that in files under the work dir so that every caisson process
// (run, the monitors, gpu watch) sees one state, and a restart hands out no
// GPU twice.
//
// Files under Config.Dir (the work dir's gpu/):
//
//	state.json      allocations (GPU UUID → container ID) and health marks,
//	                changed only under state.lock and replaced atomically
//	inventory.json  the last discovery and the boot it was made in: a launch
//	                reads it instead of loading NVML each time
//	cdi/            the CDI spec generated from the inventory (gpu/cdi)
//	sim/            for a simulated backend: dev/ with fake device nodes
//	                (major 195; nvidia-uvm and nvidia-caps on free local
//	                majors), events.jsonl (injected NVML events),
//	                faults.json (GPUs whose probes fail), mig.json (the
//	                MIG layout, see SetMIG) and mig-minors (the MIG
//	                capabilities, as the driver lists them)
//
// A GPU in MIG mode is never given whole: its MIG devices are, each with
// its GPU's node and its two access capabilities (gpu/cdi). Allocations
// and health marks key GPUs and MIG devices alike by UUID, so the MIG
// devices of one GPU can go to different containers; a GPU's mark keeps
// its MIG devices out of service too, and an event of one instance marks
// only its MIG devices.
//
// NVML needs cgo and caisson is static, so discovery, stats, probes and
// events come from the cgo helper caisson-nvml (cmd/caisson-nvml), exec'd
// with the backend; its JSON is package gpu's types. With the nvml backend
// and no helper or no NVML, GPUs are read from /proc/driver/nvidia
// (gpu/procfs): identity only, no links, stats or events.
package manager
