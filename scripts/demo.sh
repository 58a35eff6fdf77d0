#!/bin/sh
# make demo: the containerizer at work. Runs busybox containers with limits,
# shows them enforced (CFS quota, memory, pids), an OOM kill reported, usage
# printed, a live update, a detached container outliving its caller, and a
# web server on a CNI bridge network reached through a published port, and a
# size-limited volume of Caisson's Docker volume driver shared by containers.
# Everything lives in temporary state directories and is removed at the end.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (real containers)" >&2; exit 1; }

BIN=$PWD/bin/caisson
WORK=$(mktemp -d /tmp/caisson-demo.XXXXXX)
export CAISSON_ROOT=$WORK/lib CAISSON_RUN_ROOT=$WORK/run CAISSON_CGROUP_PARENT=/caisson-demo-$$
# A network config dir, subnet and bridge of the demo's own.
export CAISSON_CNI_CONFIG_DIR=$WORK/net.d CAISSON_DEFAULT_NETWORK_SUBNET=10.236.0.0/24 CAISSON_DEFAULT_NETWORK_BRIDGE=cdemo$$
ROOTFS=$WORK/busybox

PLUGIN=caisson-demo-$$
PLUGIN_PID=
WATCH_PID=

cleanup() {
	ids=$($BIN ps -aq 2>/dev/null || true)
	[ -z "$ids" ] || $BIN rm -f $ids >/dev/null 2>&1 || true
	$BIN recover >/dev/null 2>&1 || true
	if [ -n "$PLUGIN_PID" ]; then kill "$PLUGIN_PID" 2>/dev/null || true; wait "$PLUGIN_PID" 2>/dev/null || true; fi
	if [ -n "$WATCH_PID" ]; then kill "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; fi
	grep " $WORK/" /proc/self/mountinfo 2>/dev/null | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	ip link delete dev "$CAISSON_DEFAULT_NETWORK_BRIDGE" 2>/dev/null || true
	umount -l "$CAISSON_RUN_ROOT/cni/netns" 2>/dev/null || true
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do rmdir "$h$CAISSON_CGROUP_PARENT" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ caisson %s\n' "$*"; "$BIN" "$@"; }

# A root filesystem from the host's static busybox.
mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"
cp "$(readlink -f "$(command -v busybox)")" "$ROOTFS/bin/busybox"
for a in sh echo cat sleep dd head seq grep id hostname true tr httpd wget ip stat df; do ln -s busybox "$ROOTFS/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOTFS/etc/passwd"
echo 'root:x:0:' > "$ROOTFS/etc/group"

step "A container: its own pid namespace, hostname and loopback-only network"
show run --rm --rootfs "$ROOTFS" -h demo sh -c 'echo "pid $$ on $(hostname); interfaces: $(grep : /proc/net/dev | cut -d: -f1 | tr -d " ")"'

step "Limits: --cpus 0.5 is a 50% CFS quota; memory and pids limits are cgroup files"
show run -d --name worker --cpus 0.5 -m 256m --pids-limit 50 --shm-size 128m --rootfs "$ROOTFS" \
	sh -c 'head -c 67108864 /dev/zero > /dev/shm/hold; echo holding 64MiB; exec sleep 1000' >/dev/null
CG=$("$BIN" inspect worker | grep '"cgroup_path"' | cut -d'"' -f4)
for f in cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us memory/memory.limit_in_bytes pids/pids.max; do
	v=$(cat "/sys/fs/cgroup/${f%%/*}$CG/${f#*/}" 2>/dev/null || echo "(cgroup v2: see cpu.max, memory.max, pids.max)")
	echo "  ${f#*/} = $v"
done
until "$BIN" logs worker | grep -q holding; do sleep 0.1; done   # wait until it holds its memory

step "Usage: the container holds 64 MiB"
show stats worker

step "Live update: more CPU and memory"
show update --cpus 1.5 -m 512m worker
echo "  cpu.cfs_quota_us = $(cat /sys/fs/cgroup/cpu$CG/cpu.cfs_quota_us 2>/dev/null || echo n/a)"
echo "  memory.limit_in_bytes = $(cat /sys/fs/cgroup/memory$CG/memory.limit_in_bytes 2>/dev/null || echo n/a)"

step "A fork loop under --pids-limit 10 is stopped"
show run --rm --pids-limit 10 --rootfs "$ROOTFS" sh -c \
	'sh -c "for i in \$(seq 1 40); do sleep 1000 & done" 2>&1 | head -n 1; read n < /sys/fs/cgroup/pids/pids.current 2>/dev/null || read n < /sys/fs/cgroup/pids.current; echo "$n processes in the container, 40 sleeps asked for"'

step "OOM: a process that allocates 128 MiB under a 32 MiB limit is killed and reported"
set +e
show run --name hog -m 32m --rootfs "$ROOTFS" dd if=/dev/zero of=/dev/null bs=128M count=1
echo "exit status: $?"
set -e
"$BIN" inspect hog | grep -A5 '"termination"'

step "A detached container outlives the command that started it"
show run -d --name sleeper --rootfs "$ROOTFS" sleep 1000 >/dev/null
show ps
show kill sleeper >/dev/null
printf 'exit code after kill: '; "$BIN" wait sleeper
show ps -a

step "A web server on the default bridge network, published on host port 18080"
mkdir -p "$ROOTFS/www" && echo "hello from a caisson container" > "$ROOTFS/www/index.html"
show run -d --name web -p 18080:80 --rootfs "$ROOTFS" httpd -f -p 80 -h /www >/dev/null
IP=$("$BIN" inspect web | grep -A6 '"interface": "eth0"' | grep -A1 '"ips"' | tail -1 | tr -d ' ",')
echo "container address: $IP"
show run --rm --network caisson --rootfs "$ROOTFS" sh -c "wget -qO- http://$IP/ && ip -4 addr show dev eth0 | grep inet"
printf '$ wget -qO- http://127.0.0.1:18080/\n'; wget -qO- http://127.0.0.1:18080/ 2>/dev/null || busybox wget -qO- http://127.0.0.1:18080/
show network ls

step "A Docker volume driver, and a size-limited volume shared by two containers"
echo "\$ caisson volume-plugin --name $PLUGIN --root \$WORK/volumes &"
"$BIN" --log-level warn volume-plugin --name "$PLUGIN" --root "$WORK/volumes" &
PLUGIN_PID=$!
i=0; while [ ! -S "/run/docker/plugins/$PLUGIN.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
show run --rm --rootfs "$ROOTFS" -u 1000 \
	--mount "type=volume,driver=$PLUGIN,src=data,dst=/data,volume-opt=type=loop,volume-opt=size=8m,volume-opt=uid=1000" \
	sh -c 'echo "kept across containers" > /data/note; stat -c "volume root owned by uid %u"  /data; dd if=/dev/zero of=/data/big bs=1M count=16 2>&1 | grep -i "space" || true'
show run --rm --rootfs "$ROOTFS" -v "$PLUGIN/data:/data:ro" sh -c 'cat /data/note; df -h /data | tail -1'
echo "plugin state: $(grep -c '"name"' "$WORK/volumes/state.json") volume(s), $(grep -c '"mounts"' "$WORK/volumes/state.json") mounted"

step "GPUs on a simulated DGX A100 (no GPU on this machine): an NVLink pair, and only that pair"
G="--gpu-backend mock:dgxa100"
show $G gpu ls
show $G run --rm --rootfs "$ROOTFS" --gpus 2 sh -c 'echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
for d in /dev/nvidia0 /dev/nvidia1 /dev/nvidia2; do [ -e $d ] || { echo "$d: absent"; continue; }; dd if=$d of=/dev/null count=1 2>&1 | sed "s/^dd: //"; done
mknod /tmp/nvidia5 c 195 5 && dd if=/tmp/nvidia5 of=/dev/null count=1 2>&1 | sed "s/^dd: //"'
echo "(ENXIO: the device cgroup lets it through and no driver answers; EPERM: the cgroup denies it)"
show $G run --rm --rootfs "$ROOTFS" --gpus 9 true || true

step "GPU health: an XID takes a GPU out of service until it recovers"
echo "\$ caisson $G gpu watch --reprobe-interval 1s &"
"$BIN" $G gpu watch --reprobe-interval 1s >"$WORK/gpu-watch.log" &
WATCH_PID=$!
i=0; until grep -q watching "$WORK/gpu-watch.log" || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
show $G gpu simulate 0 --xid 79 --fault "fallen off the bus"
i=0; until grep -q unhealthy "$WORK/gpu-watch.log" || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
cat "$WORK/gpu-watch.log"
show $G gpu ls | grep -E "^(GPU|0|1) "
show $G run --rm --rootfs "$ROOTFS" --gpus 8 true || true
show $G gpu simulate 0 --recover
i=0; until grep -q "healthy again" "$WORK/gpu-watch.log" || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
grep "healthy again" "$WORK/gpu-watch.log"
show $G run --rm --rootfs "$ROOTFS" --gpus 8 sh -c 'echo "8 GPUs: $CUDA_VISIBLE_DEVICES"'
kill "$WATCH_PID"; wait "$WATCH_PID" 2>/dev/null || true; WATCH_PID=""

step "MIG: GPU 0 split into four MIG devices; a container gets one, with its own capabilities only"
show $G gpu simulate 0 --mig 1g.5gb,1g.5gb,2g.10gb,3g.20gb
CAPS=$((0x$(stat -c %t "$CAISSON_ROOT/gpu/sim/dev/nvidia-caps/nvidia-cap1")))
show $G run --rm --rootfs "$ROOTFS" --gpus mig-1g.5gb -e CAPS=$CAPS sh -c 'echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"
echo "GPU nodes: $(cd /dev && echo nvidia[0-9]*); capabilities: $(cd /dev/nvidia-caps && echo *)"
for c in $(ls /dev/nvidia-caps); do echo "$c: $(dd if=/dev/nvidia-caps/$c of=/dev/null count=1 2>&1 | sed "s/.*: //")"; done
mknod /tmp/config c $CAPS 1 && echo "config capability, made with mknod: $(dd if=/tmp/config of=/dev/null count=1 2>&1 | sed "s/.*: //")"'
echo "(ENXIO: its own GPU and compute instance capabilities are allowed; EPERM: config is not)"
show $G run --rm --rootfs "$ROOTFS" --gpus 8 true || true
show $G gpu simulate 0 --mig off

step "Removing everything leaves nothing behind"
"$BIN" rm -f $("$BIN" ps -aq) >/dev/null
left=$(find "$CAISSON_ROOT/containers" -mindepth 1 -maxdepth 1 | wc -l)
echo "container directories left: $left"
