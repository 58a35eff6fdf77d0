// Command caisson-nvml is Caisson's NVML helper. NVML (through go-nvml)
// needs cgo, and caisson itself is a static, cgo-free binary, so caisson
// does not load libnvidia-ml: it execs this small helper and reads the JSON
// it prints. It is not meant to be run by hand, though it can be.
//
// Usage:
//
//	caisson-nvml [--backend B] [--sim-dir DIR] COMMAND [--uuid U]...
//
// Commands, each printing JSON on stdout (the types of package gpu):
//
//	inventory        gpu.Inventory: the GPUs, the MIG devices of those in
//	                 MIG mode, and their topology. Without an NVIDIA
//	                 driver: zero devices and a reason, exit 0.
//	stats [--uuid U]...
//	                 gpu.Stats: utilisation, memory, power, temperature and
//	                 volatile ECC counts of the given GPUs, or of all.
//	probe --uuid U   gpu.Probe: whether the GPU answers NVML and is fit
//	                 (no pending retired pages, no failed row remapping);
//	                 "ok": false with a reason, exit 0, when it is not.
//	watch            one gpu.Event a line (XID and double-bit ECC errors,
//	                 and "unwatched" for a GPU that cannot be watched),
//	                 until SIGTERM or SIGINT or until stdin is closed: the
//	                 parent closes stdin to stop it, and so a helper whose
//	                 parent is gone stops too (so do not run it with stdin
//	                 from /dev/null).
//
// --backend is nvml (the driver's library, the default) or a simulated
// machine: mock:dgxa100, mock:dgxh100, mock:dgxb200. --sim-dir is the
// directory whose events.jsonl, faults.json and mig.json drive a simulated
// machine (see package gpu/nvml). Flags may also follow the command.
//
// Exit status: 0 on success; 1 on an error, with one line
// "caisson-nvml: MESSAGE" on stderr (stats, probe and watch need NVML: without
// a driver they fail so); 2 on bad usage; 3 on invalid input (an error
// wrapping api.ErrInvalid, such as a simulated MIG layout the GPU cannot
// hold), with one line on stderr. A build without cgo only says that it
// needs cgo, and exits 1.
package main
