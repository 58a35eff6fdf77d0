#!/bin/sh
# make demo, the cluster act: caisson up runs a master and an agent on a
# simulated DGX A100. Two tenants with owned shares submit sessions that run
# as real containers; one borrows the other's idle share; the owner's demand
# returns, and the borrowed tasks get their notice and end after the grace
# period; a GPU session gets two GPUs of one NVLink island; caisson up is
# killed with SIGKILL and started again, and the tasks are still running.
# Everything lives in temporary state directories and is removed at the end.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (real containers)" >&2; exit 1; }

BIN=$PWD/bin/caisson
WORK=$(mktemp -d /tmp/caisson-cluster-demo.XXXXXX)
export CAISSON_ROOT=$WORK/lib CAISSON_RUN_ROOT=$WORK/run CAISSON_CGROUP_PARENT=/caisson-cluster-demo-$$
export CAISSON_AGENT_STATE_DIR=$WORK/agent CAISSON_AGENT_LISTEN=127.0.0.1:0
export CAISSON_GPU_BACKEND=mock:dgxa100 CAISSON_RESOURCES="cpus:5;mem:4g"
ROOTFS=$WORK/busybox
UP_PID=

cleanup() {
	if [ -n "$UP_PID" ]; then kill "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; fi
	ids=$($BIN ps -aq 2>/dev/null || true)
	[ -z "$ids" ] || $BIN rm -f $ids >/dev/null 2>&1 || true
	$BIN recover >/dev/null 2>&1 || true
	grep " $WORK/" /proc/self/mountinfo 2>/dev/null | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do rmdir "$h$CAISSON_CGROUP_PARENT" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ caisson %s\n' "$*"; "$BIN" "$@"; }
as() { tok=$1; shift; printf '$ CAISSON_TOKEN_FILE=%s caisson %s\n' "$(basename "$tok")" "$*" >&2; CAISSON_TOKEN_FILE=$tok "$BIN" "$@"; }
# count STATE SESSION: how many of the session's tasks are in STATE.
count() { "$BIN" task ls --session "$2" --format json | grep -o "\"state\":\"$1\"" | wc -l; }
# wait_for N STATE SESSION: until N of the session's tasks are in STATE.
wait_for() { i=0; until [ "$(count "$2" "$3")" -ge "$1" ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done; }

mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"
cp "$(readlink -f "$(command -v busybox)")" "$ROOTFS/bin/busybox"
for a in sh echo cat sleep; do ln -s busybox "$ROOTFS/bin/$a"; done

start_up() {
	"$BIN" up --listen "127.0.0.1:${PORT:-0}" --state-dir "$WORK/master" --tick-interval 200ms >"$WORK/up.out" 2>"$WORK/up.err" &
	UP_PID=$!
	i=0; until grep -q '^master: ' "$WORK/up.out" || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
	cat "$WORK/up.out"
}

step "caisson up: a master and an agent (5 CPUs, 4 GiB, a simulated DGX A100's 8 GPUs) in one process"
printf '$ caisson up --state-dir $WORK/master &\n'
start_up
URL=$(sed -n 's/^master: //p' "$WORK/up.out")
PORT=${URL##*:}
export CAISSON_MASTER=$URL CAISSON_TLS_CA=$WORK/master/pki/ca.pem CAISSON_TOKEN_FILE=$WORK/master/admin.token
i=0; until "$BIN" agents | grep -q connected || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
show agents

step "The admin sets the consumer tree: tenants a and b own 2 CPUs each; ml owns the GPUs"
cat >"$WORK/tree.yaml" <<EOF
consumers:
  - name: a
    owned: {cpus: 2, memory: 1g}
    grace: 5s        # a borrower's task runs 5 s after its reclaim notice
  - name: b
    owned: {cpus: 2, memory: 1g}
    grace: 5s
  - name: ml
    owned: {cpus: 1, memory: 256m, gpus: 8}
EOF
cat "$WORK/tree.yaml"
show consumer apply -f "$WORK/tree.yaml"
for t in a b ml; do "$BIN" token create --consumer /$t --name $t --format json | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' >"$WORK/$t.token"; done
echo "(tenant tokens made with caisson token create --consumer /a, /b and /ml)"

job() { # NAME COUNT
	cat >"$WORK/$1.yaml" <<EOF
name: $1
groups:
  - name: work
    count: $2
    resources: {cpus: 0.5, memory: 64m}
    rootfs: $ROOTFS
    command: [sh, -c, 'trap "echo \$CAISSON_TASK_ID: SIGTERM, leaving; exit 0" TERM; echo \$CAISSON_TASK_ID running; while :; do sleep 1; done']
EOF
}

step "Tenant b asks for 8 tasks of half a CPU: 4 on its own share, 4 on the idle shares of a and ml"
job batch-b 8
B=$(as "$WORK/b.token" submit "$WORK/batch-b.yaml"); echo "$B"
wait_for 8 running "$B"
as "$WORK/b.token" task ls --session "$B"
echo "(the borrowed ones are revocable: their owners may reclaim them)"

step "Tenant a's demand returns: two of b's borrowed tasks get their notice and end after the 5 s grace"
job batch-a 4
A=$(as "$WORK/a.token" submit "$WORK/batch-a.yaml"); echo "$A"
wait_for 2 killed "$B"
wait_for 4 running "$A"
as "$WORK/b.token" task ls --session "$B"
as "$WORK/a.token" task ls --session "$A"
echo "(a's four tasks take its two CPUs: one came free on ml's idle share, the other from b's two reclaimed tasks)"
KILLED=$("$BIN" task ls --session "$B" | awk '$2 == "killed" {print $1; exit}')
show logs "$KILLED"

step "A GPU session on the simulated DGX A100: two GPUs of one NVLink island, and only those"
cat >"$WORK/train.yaml" <<EOF
name: train
groups:
  - name: worker
    count: 1
    resources: {cpus: 0.5, memory: 64m, gpus: 2}
    same_island: true
    rootfs: $ROOTFS
    command: [sh, -c, 'echo "NVIDIA_VISIBLE_DEVICES=\$NVIDIA_VISIBLE_DEVICES"; echo "GPU device nodes: \$(cd /dev && echo nvidia[0-9]*)"; exec sleep 600']
EOF
G=$(as "$WORK/ml.token" submit "$WORK/train.yaml"); echo "$G"
wait_for 1 running "$G"
as "$WORK/ml.token" task ls --session "$G"
i=0; until "$BIN" logs "$G/worker/1" | grep -q 'device nodes' || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
show logs "$G/worker/1"

step "kill -9 of caisson up: the containers keep running; started again, it finds them all"
show ps
kill -9 "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=
echo "\$ kill -9 <caisson up>"
show ps
printf '$ caisson up --state-dir $WORK/master &\n'
start_up >/dev/null
i=0; until "$BIN" agents | grep -q connected || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
grep -E 'master restored|task recovered|registered with' "$WORK/up.err" | sed 's/^time=[^ ]* //'
show session ls
show task ls --session "$A"

step "Killing the sessions ends their tasks; nothing is left"
for s in "$A" "$B" "$G"; do "$BIN" session kill "$s" >/dev/null; done
i=0; until [ -z "$("$BIN" ps -aq)" ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
show session ls --all
echo "containers left: $("$BIN" ps -aq | wc -l)"
