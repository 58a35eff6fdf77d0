// Package containerizer launches, watches and destroys containers: the
// launch and destroy state machine, the ordered isolator pipeline,
// checkpoints and recovery. It keeps no state in memory that is not also on
// disk, so any number of processes may use one work dir at once.
//
// A container's life. Phases in brackets are what its checkpoint records
// (the launch writes them; recovery tells containers apart by them), and
// the names after a colon are the crash points that tests stop the process
// at (Config.CrashPoint):
//
//	Launch (caisson run; holds the container's lock throughout)
//	  validate the spec, check the runtime can run
//	  ─▶ reserve: the ID in the ledger, the name (under the root lock), the
//	     directory and its lock, every isolator listed          [reserved] :reserved
//	  ─▶ start the monitor, which waits for "go"
//	  ─▶ provision the root filesystem (Provisioner)                       :provisioned
//	  ─▶ isolators Prepare, in order; each returns spec changes            :prepared:<isolator>
//	  ─▶ merge them into the spec (conflicts name both isolators), seccomp last
//	  ─▶ hooks CreateContainer, in order; each may adjust the spec or refuse
//	  ─▶ write the bundle                                       [prepared] :bundle
//	  ─▶ "go": the monitor has the runtime create the container and
//	     reports its pid (create and start are one call, run --detach,
//	     when no isolator is a PidIsolator)                                :created
//	  ─▶ isolators Isolate(pid), in order                                  :isolated
//	  ─▶ runtime start (unless the create started it)
//	  ─▶ isolators Started(pid), in order
//	  ─▶ the running checkpoint                                 [running]  :started
//	  ─▶ hooks PostStart, in order
//	  An error at any step undoes all of it (destroy, below); a crash is
//	  undone by recovery, which finds every isolator in the checkpoint.
//
//	Monitor (caisson monitor, a session of its own, child subreaper)
//	  copy the container's output to container.log ─▶ isolators Watch
//	  (a limitation kills the container) ─▶ reap the init ─▶ record the
//	  termination (not with AutoRemove)                         [exited]   :recorded
//	  ─▶ destroy, keeping the directory ─▶ cleaned (─▶ removed with AutoRemove)
//	  ─▶ hooks PostStop, in order ─▶ the exit to the launcher, if it waits
//
//	Destroy (the monitor, Remove, a failed launch, recovery)
//	  runtime delete ─▶ isolators Cleanup, in reverse order ─▶ unmount the
//	  root filesystem (its files stay) or, to remove, release it
//
//	Remove (under the directory's own lock)
//	  [kill ─▶ wait, with force] ─▶ destroy ─▶ move the directory to the
//	  trash                                                                :trashed
//	  ─▶ delete it                                                         :removed
//	  ─▶ forget the ID in the ledger
//
//	Update (a running container): the new checkpoint as an intent,
//	  update.json                                                          :update:intent
//	  ─▶ each Updater, in order, applies all of it or nothing (when one
//	     refuses, those before it get the old limits back)                 :update:applied
//	  ─▶ the intent renamed over the checkpoint (deleted when refused)
//
// Users see the phases as the states creating (reserved, prepared),
// running and exited; unknown when a running container's monitor is gone;
// unreadable when its checkpoint cannot be read. Each phase of a launch
// (see Launch), and the monitor's create, watch and cleanup, log one line
// at debug level with the phase's name, its isolator and its duration.
//
// On disk, under the work dir (Config.Root):
//
//	containers.lock            the root lock: reservations (names) and recovery's
//	                           view of which containers exist
//	owned/<id>                 the ownership ledger: written before anything of the
//	                           container exists, removed once nothing is left
//	containers/<id>/lock       the container's lock (flock), made at the reservation
//	                           (made anew by recovery if it is lost)
//	containers/<id>/container.json   the checkpoint (atomic writes)
//	containers/<id>/update.json      an update's intent, until it is committed
//	containers/<id>/spare, spare.2   room kept for the checkpoints that record the end
//	containers/<id>/kill-requested   a kill that could not be checkpointed
//	containers/<id>/bundle/    the OCI bundle's config.json
//	containers/<id>/fs/        the root filesystem (rootfs, upper, work), the
//	                           Provisioner's
//	containers/<id>/init.pid   the runtime's pid file
//	containers/<id>/container.log    the container's output (CRI log format)
//	containers/<id>/monitor.log      the monitor's own log
//	trash/<id>                 a container directory being deleted
//
// and under the runtime dir (Config.RunRoot), gone at reboot:
//
//	recovered-<hash of Root>   this work dir was fully recovered since boot
//
// The runtime, the provisioner and the isolators keep their own state
// where cmd/caisson puts them (the runtime's under the runtime dir, the
// image store and the isolators' under the work dir).
//
// Recovery (Recover, run by every command but the monitor) undoes interrupted launches,
// records containers whose monitor died as lost, finishes interrupted
// cleanups, updates and removals, and, in its full pass, destroys orphans:
// what the runtime and the isolators hold for IDs the ledger names whose
// directories are gone. Nothing else is touched: other work dirs may share
// the cgroup parent and the runtime dir. A container whose checkpoint exists
// but cannot be read is quarantined: recovery leaves it alone, and only a
// forced Remove destroys it.
package containerizer
