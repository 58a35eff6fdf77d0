// Package isolator is the docker/volume isolator: it mounts the volumes of
// any Docker volume plugin (legacy or managed) into Caisson containers.
//
// Lifecycle of one volume (driver D, name N) across the containers using it:
//
//	Prepare(c1, D/N at /data)   lock D/N; first user: Get, Create if missing,
//	                            record {id1, holders [c1:/data], pending},
//	                            Mount(N, id1), record the mount point;
//	                            bind-mount it at /data (rw or ro)
//	Prepare(c2, D/N at /x)      lock D/N; holders [c1:/data, c2:/x]; no plugin call
//	Cleanup(c1)                 lock D/N; holders [c2:/x]
//	Cleanup(c2)                 lock D/N; last user: Unmount(N, id1); record removed
//
// The mount ID is derived from the first user's container ID and target
// (sha256), so a retried Mount after a crash reuses it. The record is a
// file under the work dir (never tmpfs: it must outlive a reboot, after
// which Recover unmounts what nobody uses), written before the plugin is
// called; a lock file per volume serialises every operation on it across
// processes. The isolator keeps its own count of users, so a plugin that
// counts mounts badly, or not at all (as Mesos found with dvdcli), still
// gets exactly one Mount and one Unmount per stretch of use.
package isolator
