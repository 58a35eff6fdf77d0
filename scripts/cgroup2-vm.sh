#!/bin/sh
# make test-cgroup2: run the cgroups isolator's tests and the end-to-end tests
# on a unified cgroup v2 host, which this one (hybrid: the controllers are in
# the v1 hierarchies) is not. It boots Debian's kernel in a small virtual
# machine whose root filesystem is an initramfs built here: busybox, runc and
# crun (with their libraries), the caisson binary and the test binaries.
# The VM mounts only cgroup2 at /sys/fs/cgroup (cgroup_no_v1=all), enables the
# cpu, memory, pids and io controllers for the root's children, runs the
# cgroups and end-to-end test binaries, prints their output on the serial
# console and powers off.
#
# It also runs the XFS project quota tests, which skip on this host and in CI
# (their kernel is built without CONFIG_XFS_QUOTA, so mounting XFS with
# prjquota fails with EINVAL) but not on Debian's kernel: all of
# internal/xfsquota's tests and volumes/driver's TestDirSizeOnXFS (a
# size-limited dir volume), on loop-mounted images in the VM's tmpfs. For them
# the initramfs also holds mkfs.xfs and mkfs.ext4 (with their libraries) and
# the kernel modules for XFS, ext4 and loop devices.
#
# This script fails unless the cgroups, end-to-end and both XFS test binaries
# report PASS, TestV2Controllers and TestDirSizeOnXFS passed, and none of the
# XFS tests skipped.
#
# Accelerator: KVM when the CPU has hardware virtualisation (vmx or svm).
# Some hosts' /dev/kvm is a paravirtual one without it (PVM, the nested KVM of
# some cloud VMs, this project's development and CI machines among them): it
# boots only kernels built as PVM guests and hangs on Debian's. There, and wherever a
# KVM boot does not reach the VM's init within a minute, the VM runs under
# QEMU's TCG emulator instead: the same kernel and tests, about three minutes
# in all. CGROUP2_VM_ACCEL=kvm|tcg forces one; CGROUP2_VM_E2E_FLAGS adds
# flags to the e2e test binary (-test.run=..., -test.skip=...).
#
# It installs what it needs on first use (qemu-system-x86 and cpio, with
# apt-get) and keeps Debian's kernel and the modules the VM loads, extracted
# from its package without installing it, in .cache/cgroup2-vm/. The host is
# otherwise left alone: the build and the initramfs live in a temporary
# directory removed at the end.
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD

[ "$(id -u)" = 0 ] || { echo "test-cgroup2: needs root (apt-get, device nodes in the initramfs)" >&2; exit 1; }

GO=${GO:-go}
CACHE=$ROOT/.cache/cgroup2-vm
VM_TIMEOUT=${CGROUP2_VM_TIMEOUT:-1500} # seconds for the whole VM run
mkdir -p "$CACHE"
log() { echo "test-cgroup2: $*"; }

# --- host packages ----------------------------------------------------------
apt_install() {
	log "installing $*"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
	fi
}
missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
[ -z "$missing" ] || apt_install $missing
for c in runc crun busybox mkfs.xfs mkfs.ext4; do
	command -v $c >/dev/null 2>&1 || { echo "test-cgroup2: $c is missing (make deps installs it)" >&2; exit 1; }
done

# --- the kernel: Debian's, extracted from its package into the cache --------
# The modules the VM loads, in this order (each after those it depends on, as
# their modinfo "depends" and "softdep" say): overlay for the containers; xfs,
# which needs libcrc32c, which needs the crc32c algorithm; loop; ext4 (one
# XFS quota test checks that ext4 is refused), which needs crc16, mbcache and
# jbd2. Any of them that a kernel builds in (modules.builtin) is left out.
KMODS="overlay crc32c_generic libcrc32c xfs loop crc16 mbcache jbd2 ext4"
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'; }
KDIR=$(ls -d "$CACHE"/linux-image-*/ 2>/dev/null | sort -V | tail -n 1)
KDIR=${KDIR%/}
if [ -z "$KDIR" ] || [ ! -f "$KDIR/vmlinuz" ] || [ "$(cat "$KDIR/modules" 2>/dev/null)" != "$KMODS" ]; then
	pkg=$(kernel_pkg)
	if [ -z "$pkg" ]; then
		apt-get update -q >/dev/null
		pkg=$(kernel_pkg)
	fi
	[ -n "$pkg" ] || { echo "test-cgroup2: apt knows no linux-image-amd64 kernel" >&2; exit 1; }
	log "downloading $pkg (extracted into $CACHE, not installed)"
	dl=$(mktemp -d "$CACHE/download.XXXXXX")
	(cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
	mkdir -p "$dl/x"
	names=$(echo "$KMODS" | tr ' ' '|')
	dpkg-deb --fsys-tarfile "$dl"/*.deb | tar -t | grep -E "^\./boot/vmlinuz-|/kernel/.*/($names)\.ko(\.xz|\.zst)?\$|/modules\.builtin\$" >"$dl/members"
	dpkg-deb --fsys-tarfile "$dl"/*.deb | tar -x -C "$dl/x" -T "$dl/members"
	KDIR=$CACHE/$pkg
	rm -rf "$KDIR" && mkdir -p "$KDIR"
	cp "$dl"/x/boot/vmlinuz-* "$KDIR/vmlinuz"
	for m in $KMODS; do
		ko=$(find "$dl/x" -name "$m.ko*" | head -n 1)
		case $ko in
		"")
			grep -q "/$m\.ko\$" "$dl"/x/lib/modules/*/modules.builtin 2>/dev/null ||
				{ echo "test-cgroup2: $pkg has no module $m, and does not build it in" >&2; exit 1; }
			;;
		*.xz) xz -dc "$ko" >"$KDIR/$m.ko" ;;
		*.zst) zstd -qdc "$ko" >"$KDIR/$m.ko" ;;
		*) cp "$ko" "$KDIR/$m.ko" ;;
		esac
	done
	echo "$KMODS" >"$KDIR/modules"
	rm -rf "$dl"
fi
log "kernel $(basename "$KDIR")"

# --- accelerator ------------------------------------------------------------
ACCEL=${CGROUP2_VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
	if [ -e /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
		ACCEL=kvm
	elif [ ! -e /dev/kvm ]; then
		ACCEL=tcg
		log "no /dev/kvm: using QEMU's TCG emulator"
	else
		ACCEL=tcg
		pvm=""
		[ ! -d /sys/module/kvm_pvm ] || pvm=" (it is PVM, which boots only PVM guest kernels)"
		log "this CPU has no vmx/svm, so /dev/kvm cannot boot Debian's kernel$pvm: using QEMU's TCG emulator"
	fi
fi
case $ACCEL in
kvm | tcg) ;;
*) echo "test-cgroup2: CGROUP2_VM_ACCEL must be kvm or tcg" >&2; exit 1 ;;
esac

# --- binaries and initramfs -------------------------------------------------
WORK=$(mktemp -d /tmp/caisson-cgroup2-vm.XXXXXX)
QEMU_PID=""
cleanup() {
	if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

IR=$WORK/initramfs
mkdir -p "$IR/bin" "$IR/sbin" "$IR/usr/bin" "$IR/usr/sbin" "$IR/etc" "$IR/dev" "$IR/proc" "$IR/sys" \
	"$IR/tmp" "$IR/run" "$IR/root" "$IR/mnt" "$IR/newroot" "$IR/tests" "$IR/lib/modules"
chmod 1777 "$IR/tmp"

log "building caisson and the test binaries (CGO_ENABLED=0)"
CGO_ENABLED=0 $GO build -o "$IR/bin/caisson" ./cmd/caisson
CGO_ENABLED=0 $GO test -c -o "$IR/tests/cgroups.test" ./isolators/cgroups/
CGO_ENABLED=0 $GO test -c -o "$IR/tests/e2e.test" ./e2e/
# The seccomp tests' probe and the NRI tests' plugin: the VM has no Go toolchain to build them with.
(cd e2e && CGO_ENABLED=0 $GO build -o "$IR/tests/seccomp-probe" ./testdata/seccompprobe)
(cd agenthook && CGO_ENABLED=0 $GO build -o "$IR/tests/nri-plugin" ./testdata/nriplugin)
CGO_ENABLED=0 $GO test -c -o "$IR/tests/xfsquota.test" ./internal/xfsquota/
CGO_ENABLED=0 $GO test -c -o "$IR/tests/driver.test" ./volumes/driver/

cp "$(readlink -f "$(command -v busybox)")" "$IR/bin/busybox"
# The modules, and the order in which the VM's init loads them.
for m in $KMODS; do
	if [ -f "$KDIR/$m.ko" ]; then
		cp "$KDIR/$m.ko" "$IR/lib/modules/$m.ko"
		echo "$m" >>"$IR/lib/modules/order"
	fi
done

# A dynamically linked binary, with the libraries and the ELF interpreter
# ldd lists, at the paths it lists.
copy_elf() {
	src=$(readlink -f "$(command -v "$1")")
	mkdir -p "$IR$(dirname "$2")"
	cp "$src" "$IR$2"
	ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
		mkdir -p "$IR$(dirname "$lib")"
		cp -L "$lib" "$IR$lib"
	done
}
copy_elf runc /usr/sbin/runc
# The NVML helper (cgo) next to caisson: the GPU tests run on a simulated
# DGX with fake device nodes, under the cgroup v2 device filter.
CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations $GO build -o "$WORK/caisson-nvml" ./cmd/caisson-nvml
copy_elf "$WORK/caisson-nvml" /bin/caisson-nvml
copy_elf crun /usr/bin/crun
# For the XFS quota tests. mkfs.ext4 is a link to mke2fs, which takes the
# filesystem type from the name it is run by.
copy_elf mkfs.xfs /usr/sbin/mkfs.xfs
copy_elf mkfs.ext4 /usr/sbin/mkfs.ext4
[ ! -f /etc/mke2fs.conf ] || cp /etc/mke2fs.conf "$IR/etc/mke2fs.conf"

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$IR/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$IR/etc/group"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$IR/etc/hosts"
mknod -m 600 "$IR/dev/console" c 5 1
mknod -m 666 "$IR/dev/null" c 1 3

cat >"$IR/init" <<'EOF'
#!/bin/busybox sh
# Stage 1 (pid 1 on the initramfs): runc cannot pivot_root out of the
# initramfs, so copy it into a tmpfs and make that the root.
if [ "$1" != stage2 ]; then
	/bin/busybox mount -t tmpfs -o mode=755,size=80% rootfs /newroot
	for f in /*; do
		case $f in /newroot | /dev | /proc | /sys) /bin/busybox mkdir -p "/newroot$f" ;; *) /bin/busybox cp -a "$f" /newroot/ ;; esac
	done
	exec /bin/busybox switch_root /newroot /init stage2
fi

# Stage 2: the host the tests see.
/bin/busybox --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
dmesg -n 1 # kernel messages (OOM kills) would cut into the tests' output lines
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=755 run /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m.ko" || echo "CGROUP2-VM: insmod $m failed"
done
ip link set lo up
hostname cgroup2-vm
ok=1
echo "CGROUP2-VM: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
for c in cpu memory pids io; do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || ok=0
done
echo "CGROUP2-VM: subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
grep -q overlay /proc/filesystems || { echo "CGROUP2-VM: no overlay filesystem"; ok=0; }
grep -q '^cgroup ' /proc/mounts && { echo "CGROUP2-VM: a cgroup v1 hierarchy is mounted"; ok=0; }
if [ $ok = 1 ]; then
	export CI=true
	cd /tests
	start=$(date +%s)
	./cgroups.test -test.v -test.count=1 -test.timeout 15m
	echo "CGROUP2-VM: cgroups rc=$? ($(($(date +%s) - start))s)"
	start=$(date +%s)
	set -f
	CAISSON_E2E_BIN=/bin/caisson CAISSON_SECCOMP_PROBE=/tests/seccomp-probe CAISSON_NRI_PLUGIN=/tests/nri-plugin CAISSON_E2E_NO_CNI=1 ./e2e.test -test.v -test.count=1 -test.short -test.timeout 20m $(cat e2e.flags)
	echo "CGROUP2-VM: e2e rc=$? ($(($(date +%s) - start))s)"
	set +f
else
	echo "CGROUP2-VM: setup failed"
fi
# The XFS project quota tests (on loop devices over files in /tmp), which
# need no cgroup.
export CI=true
cd /tests
xqm=no
[ -e /proc/fs/xfs/xqm ] && xqm=yes
echo "CGROUP2-VM: XFS quota tests (xfs $(grep -qw xfs /proc/filesystems && echo loaded || echo missing), quota support $xqm, $(ls /dev/loop-control 2>/dev/null || echo no /dev/loop-control))"
start=$(date +%s)
./xfsquota.test -test.v -test.count=1 -test.timeout 10m
echo "CGROUP2-VM: xfsquota rc=$? ($(($(date +%s) - start))s)"
start=$(date +%s)
./driver.test -test.v -test.count=1 -test.timeout 10m -test.run '^TestDirSizeOnXFS$'
echo "CGROUP2-VM: driver rc=$? ($(($(date +%s) - start))s)"
sync
poweroff -f
EOF
# The network and Docker volume tests (the cluster's among them) need CNI
# plugins, iptables and dockerd, which the VM has not; they test nothing
# about cgroups and run on the host.
printf '%s\n' "-test.skip=^(TestNetwork|TestDockerVolumes|TestClusterNetworkAndVolume) ${CGROUP2_VM_E2E_FLAGS:-}" >"$IR/tests/e2e.flags"
chmod 755 "$IR/init"

(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1 >"$WORK/initramfs.gz")
rm -rf "$IR"

# --- run ----------------------------------------------------------------------
LOG=$CACHE/console.log
# boot ACCEL: start the VM in the background, its console going to $LOG.
boot() {
	case $1 in
	kvm) accel="-accel kvm -cpu host" ;;
	tcg) accel="-accel tcg,thread=multi -cpu max" ;;
	esac
	: >"$LOG"
	# shellcheck disable=SC2086
	timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 $accel -m 3072 -smp 2 \
		-nodefaults -no-user-config -display none -no-reboot -monitor none \
		-serial "file:$LOG" -kernel "$KDIR/vmlinuz" -initrd "$WORK/initramfs.gz" \
		-append "console=ttyS0 rdinit=/init panic=-1 quiet systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" \
		</dev/null &
	QEMU_PID=$!
}
# booted SECONDS: whether the VM's init reports within SECONDS.
booted() {
	n=0
	while [ "$n" -lt "$1" ]; do
		grep -q '^CGROUP2-VM: kernel' "$LOG" && return 0
		kill -0 "$QEMU_PID" 2>/dev/null || return 1
		sleep 1
		n=$((n + 1))
	done
	return 1
}
start=$(date +%s)
log "initramfs $(du -m "$WORK/initramfs.gz" | cut -f1) MiB; booting with $ACCEL (timeout ${VM_TIMEOUT}s)"
boot "$ACCEL"
if [ "$ACCEL" = kvm ] && [ -z "${CGROUP2_VM_ACCEL:-}" ] && ! booted 60; then
	kill "$QEMU_PID" 2>/dev/null || true
	wait "$QEMU_PID" 2>/dev/null || true
	log "KVM did not boot the VM within 60s (console: $(tr -d '\r' <"$LOG" | tail -n 1)); using QEMU's TCG emulator"
	ACCEL=tcg
	start=$(date +%s)
	boot tcg
fi
# In the background too, so that a signal to this script is handled at once.
tail -n +1 -f --pid="$QEMU_PID" "$LOG" | sed -u 's/\r$//' &
TAIL_PID=$!
qrc=0
wait "$QEMU_PID" || qrc=$?
QEMU_PID=""
wait "$TAIL_PID" || true
secs=$(($(date +%s) - start))

# --- verdict ------------------------------------------------------------------
echo
log "VM ran ${secs}s with $ACCEL (qemu exit $qrc); console log: $LOG"
tr -d '\r' <"$LOG" | grep -E '^CGROUP2-VM: ' | sed 's/^/  /' || true
failed=$(tr -d '\r' <"$LOG" | grep -E '^ *--- FAIL' || true)
[ -z "$failed" ] || { log "failed tests:"; echo "$failed"; }
verdict=0
grep -q '^CGROUP2-VM: cgroups rc=0 ' "$LOG" || { log "FAIL: the cgroups tests did not pass"; verdict=1; }
grep -q '^--- PASS: TestV2Controllers ' "$LOG" || { log "FAIL: TestV2Controllers did not run and pass"; verdict=1; }
grep -q '^CGROUP2-VM: e2e rc=0 ' "$LOG" || { log "FAIL: the end-to-end tests did not pass"; verdict=1; }
# The XFS tests' output: from the line before them to the driver's result.
XFSLOG=$WORK/xfs.log
tr -d '\r' <"$LOG" | sed -n '/^CGROUP2-VM: XFS quota tests/,/^CGROUP2-VM: driver rc=/p' >"$XFSLOG"
grep -q '^CGROUP2-VM: xfsquota rc=0 ' "$XFSLOG" || { log "FAIL: the XFS quota tests did not pass"; verdict=1; }
grep -q '^--- PASS: TestLimit ' "$XFSLOG" || { log "FAIL: xfsquota's TestLimit did not run and pass"; verdict=1; }
grep -q '^CGROUP2-VM: driver rc=0 ' "$XFSLOG" || { log "FAIL: the volume driver's XFS test did not pass"; verdict=1; }
grep -q '^--- PASS: TestDirSizeOnXFS ' "$XFSLOG" || { log "FAIL: TestDirSizeOnXFS did not run and pass"; verdict=1; }
xfsskipped=$(grep -E '^ *--- SKIP' "$XFSLOG" || true)
[ -z "$xfsskipped" ] || { log "FAIL: XFS tests skipped (Debian's kernel has XFS quota support):"; echo "$xfsskipped"; verdict=1; }
if [ $qrc = 124 ] || [ $qrc = 137 ]; then log "FAIL: the VM did not finish in ${VM_TIMEOUT}s"; verdict=1; fi
[ $verdict = 0 ] && log "PASS: cgroups and e2e tests on cgroup v2, XFS quota tests"
exit $verdict
