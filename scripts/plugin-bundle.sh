#!/bin/sh
# plugin-bundle.sh OUTDIR CAISSON_BINARY: make the directory that
# `docker plugin create NAME OUTDIR` accepts: config.json and a rootfs holding
# the static caisson binary and the directories the plugin uses.
set -eu
out=$1 bin=$2
here=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out/rootfs/mnt/volumes" "$out/rootfs/run/docker/plugins" "$out/rootfs/tmp" \
	"$out/rootfs/proc" "$out/rootfs/sys" "$out/rootfs/dev" "$out/rootfs/etc"
cp "$bin" "$out/rootfs/caisson"
chmod 0755 "$out/rootfs/caisson"
printf 'root:x:0:0:root:/:/caisson\n' >"$out/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$out/rootfs/etc/group"
cp "$here/packaging/plugin-config.json" "$out/config.json"
