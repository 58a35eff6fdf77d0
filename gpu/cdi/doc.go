// Package cdi gives containers NVIDIA GPUs through the Container Device
// Interface (tags.cncf.io/container-device-interface): it writes a CDI spec
// of the host's GPUs and injects the devices a container was granted into
// its OCI runtime spec. It is pure Go and reads no NVML.
//
// Where each piece comes from:
//
//   - Majors: /proc/devices. The GPU major is "nvidia-frontend" before
//     driver 550.40 and "nvidia" since (195 in practice); nvidia-uvm and
//     nvidia-caps have dynamic majors. Simulated GPUs use 195 and two free
//     majors reserved for local use (SimulatedMajors), and CreateNodes makes
//     their fake nodes in a directory Caisson owns.
//   - Nodes: the inventory (gpu.Inventory, from gpu/nvml or gpu/procfs)
//     gives each GPU's UUID and minor, /dev/nvidia<minor>; the control nodes
//     nvidiactl (:255), nvidia-modeset (:254), nvidia-uvm and
//     nvidia-uvm-tools (:0, :1) are the driver's fixed minors. The uvm pair
//     only exists once the nvidia-uvm module is loaded (nvidia-modprobe -u),
//     which should happen before the majors are read.
//   - MIG: a GPU in MIG mode is only given through its MIG devices. Each
//     gets its GPU's node and the access capabilities of its GPU instance
//     and compute instance, /dev/nvidia-caps/nvidia-cap<minor>, whose minors
//     /proc/driver/nvidia-caps/mig-minors lists (ReadMIGMinors; a simulated
//     machine has a file of the same form, SimulatedMIGMinors). The config
//     and monitor capabilities are never given.
//   - Files: the driver root (/ or a driver container's root). Library
//     directories come from its etc/ld.so.cache, filtered by the
//     architecture flag of each entry (or the architecture's standard
//     directories), binaries from usr/bin and bin, GSP firmware from
//     lib/firmware/nvidia/<version>, IPC sockets from run and tmp. This is
//     what nvidia-container-toolkit's pkg/nvcdi mounts for compute and
//     utility work, without its hooks.
//   - Generate: one CDI device per GPU and per MIG device, named by UUID
//     (nvidia.com/gpu=GPU-… or MIG-…; never an index, which changes when a
//     GPU disappears) and spec-level edits every GPU container gets. When
//     `nvidia-ctk cdi generate` is installed, its spec (LoadBase) supplies
//     the mounts and the hooks (ldcache update, symlinks, CUDA
//     compatibility) instead.
//   - Write and Inject: the spec lives in a directory of Caisson's own, not
//     /etc/cdi, so no other runtime sees Caisson's GPU names and Caisson
//     sees no other vendor's specs.
//
// Lifecycle:
//
//	startup:  ReadMajors ────┐
//	          ReadMIGMinors ─┤
//	          DriverFiles ───┼─> Generate ─> Write(dir)
//	          inventory ─────┘
//	launch:   allocate UUIDs (GPU-…, MIG-…) ─> Inject(dir, scratch spec, uuids)
//	          ─> the isolator turns linux.devices, the device allow rules,
//	             mounts, hooks and env into its response
//
// CDI only appends allow rules: the container's spec must already start
// with a deny-all device rule, which Caisson's base spec does.
package cdi
