#!/bin/sh
# The live-snapshot walkthrough, with dmsnap only (no lvm2, no dmsetup). Runs as root on a
# kernel with device-mapper; scripts/demo.sh runs it inside the project's VM.
#
# 1. wrap a disk (a loop device here) and put ext4 on /dev/mapper/data, mounted;
# 2. while a writer keeps writing, take a snapshot: the frozen view is /dev/mapper/data-snap;
# 3. back up from the snapshot (here: list and checksum it), check usage, drop it;
# 4. upgrade safety net: snapshot, "upgrade" (change files), roll back, verify.
set -eu
DMSNAP=${DMSNAP:-dmsnap}
work=$(mktemp -d)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
    set +e
    [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null
    umount "$work/snap" "$work/data" 2>/dev/null
    $DMSNAP drop data >/dev/null 2>&1
    $DMSNAP unwrap data >/dev/null 2>&1
    [ -n "${disk:-}" ] && losetup -d "$disk"
    [ -n "${cow:-}" ] && losetup -d "$cow"
}
trap cleanup EXIT

truncate -s 256M "$work/disk.img"
truncate -s 64M "$work/cow.img"
disk=$(losetup --find --show "$work/disk.img")
cow=$(losetup --find --show "$work/cow.img")
mkdir -p "$work/data" "$work/snap"

say "version"
run $DMSNAP version

say "wrap $disk and mount /dev/mapper/data"
run $DMSNAP wrap data "$disk"
run mkfs.ext4 -q /dev/mapper/data
run mount /dev/mapper/data "$work/data"
for i in 1 2 3 4 5; do head -c 1048576 /dev/urandom > "$work/data/before-$i"; done
(cd "$work/data" && sha256sum before-*) > "$work/before.sha256"
run $DMSNAP ls

say "snapshot while a writer keeps writing"
( i=0; while :; do i=$((i+1)); head -c 65536 /dev/urandom > "$work/data/during-$i"; done ) &
writer=$!
sleep 1
run $DMSNAP snapshot data --cow "$cow"
sleep 1
kill "$writer"; wait "$writer" 2>/dev/null || true; writer=
run $DMSNAP status data

say "the frozen view: consistent and exactly the files of the snapshot moment"
run e2fsck -fn /dev/mapper/data-snap
run mount -o ro /dev/mapper/data-snap "$work/snap"
(cd "$work/snap" && sha256sum -c "$work/before.sha256")
echo "files in snapshot: $(ls "$work/snap" | wc -l), in origin now: $(ls "$work/data" | wc -l)"
run umount "$work/snap"
run $DMSNAP status data --json

say "drop the snapshot: the origin keeps its new data"
run $DMSNAP drop data
run $DMSNAP status data

say "upgrade safety net: snapshot, upgrade, roll back"
run $DMSNAP snapshot data --cow "$cow" --chunk 64k
rm "$work/data/before-1"; echo upgraded > "$work/data/before-2"; echo new > "$work/data/new-file"
echo "after the upgrade: $(ls "$work/data" | head -3 | tr '\n' ' ')..."
printf '$ %s\n' "$DMSNAP rollback data   # refused while mounted"
if $DMSNAP rollback data; then echo "rollback should refuse while mounted"; exit 1; fi
run umount "$work/data"
run $DMSNAP rollback data --wait
run mount /dev/mapper/data "$work/data"
(cd "$work/data" && sha256sum -c "$work/before.sha256")
[ ! -e "$work/data/new-file" ] && echo "new-file is gone: the origin is back at the snapshot"
run umount "$work/data"
run $DMSNAP status data
run $DMSNAP unwrap data
run $DMSNAP ls
say "walkthrough complete"
