// Package containerizer launches, watches and destroys containers: the
// launch and destroy state machine, the ordered isolator pipeline,
// checkpoints and recovery. It keeps no state in memory that is not also on
// disk, so any number of processes may use one work dir at once.
//
// A container's life, as its checkpoint records it:
//
//	Launch:  reserve ─▶ provision rootfs ─▶ isolators Prepare ─▶ bundle  ─▶ monitor: runtime create
//	         (phase reserved)                                 (prepared)
//	         ─▶ isolators Isolate(pid) ─▶ runtime start ─▶ running
//	Monitor: reap the init ─▶ record the termination (exited) ─▶ runtime delete ─▶ isolators Cleanup
//	         ─▶ unmount the rootfs ─▶ cleaned (─▶ removed with AutoRemove)
//	Remove:  [kill ─▶ wait] ─▶ destroy ─▶ move the directory to the trash ─▶ delete it ─▶ forget the ID
//
// Users see these as the states creating, running and exited; unknown when
// a running container's monitor is gone; unreadable when its checkpoint
// cannot be read.
//
// On disk, under the work dir (Config.Root):
//
//	owned/<id>                 the ownership ledger: written before anything of the
//	                           container exists, removed once nothing is left
//	containers/<id>/lock       the container's lock (flock), made at the reservation
//	                           (made anew by recovery if it is lost)
//	containers/<id>/container.json   the checkpoint (atomic writes)
//	containers/<id>/update.json      an update's intent, until it is committed
//	containers/<id>/spare, spare.2   room kept for the checkpoints that record the end
//	containers/<id>/kill-requested   a kill that could not be checkpointed
//	containers/<id>/bundle/    the OCI bundle's config.json
//	containers/<id>/fs/        the root filesystem (rootfs, upper, work)
//	containers/<id>/container.log, monitor.log
//	trash/<id>                 a container directory being deleted
//
// Recovery (Recover, run by every command) undoes interrupted launches,
// records containers whose monitor died as lost, finishes interrupted
// cleanups, updates and removals, and, in its full pass, destroys orphans:
// what the runtime and the isolators hold for IDs the ledger names whose
// directories are gone. Nothing else is touched: other work dirs may share
// the cgroup parent and the runtime dir. A container whose checkpoint exists
// but cannot be read is quarantined: recovery leaves it alone, and only a
// forced Remove destroys it.
package containerizer
