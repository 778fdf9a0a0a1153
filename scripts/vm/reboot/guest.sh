#!/bin/sh
# Guest half of scripts/vm/reboot-test.sh: `sh guest.sh 1` before the reboot, `sh guest.sh 2`
# after it (the same disk images, attached in another order). Disks are found by serial.
# Prints REBOOT-TEST-FAIL: ... and exits 1 on the first failed check.
set -u
phase="$1"
out="${VM_OUT:-/out}"
fail() {
    echo "REBOOT-TEST-FAIL: $*"
    exit 1
}
ok() { echo "reboot-test: ok: $*"; }
dev_of() {
    for s in /sys/block/vd*; do
        if [ "$(cat "$s/serial" 2>/dev/null)" = "$1" ]; then
            echo "/dev/${s##*/}"
            return 0
        fi
    done
    return 1
}
sum() { sha256sum <"$1" | cut -d' ' -f1; }
# files DIR TAG N: N files of 256 KiB of random data.
files() {
    i=0
    while [ "$i" -lt "$3" ]; do
        dd if=/dev/urandom of="$1/$2-$i" bs=64k count=4 2>/dev/null || fail "writing $1/$2-$i"
        i=$((i + 1))
    done
}
mnt() {
    mkdir -p "/mnt/$1"
    mount -t ext4 "/dev/mapper/$1" "/mnt/$1" || fail "mount /dev/mapper/$1"
}
run() {
    echo "+ $*"
    "$@" || fail "$* (exit $?)"
}

echo "reboot-test phase $phase: disks by serial:"
for s in /sys/block/vd*; do echo "  /dev/${s##*/} serial=$(cat "$s/serial" 2>/dev/null)"; done

if [ "$phase" = 1 ]; then
    A=$(dev_of SA) && C=$(dev_of SC) && L=$(dev_of SL) && CL=$(dev_of SCL) &&
        M=$(dev_of SM) && CM=$(dev_of SCM) && D=$(dev_of SD) && CD=$(dev_of SCD) &&
        P=$(dev_of SP) || fail "a disk is missing"
    # p: a plain wrapper, described in /etc/dmsnap/wrap/p.conf (carried to boot 2 as a
    # root filesystem would be).
    run dmsnap wrap p "$P" --boot
    run mkfs.ext4 -q /dev/mapper/p
    sum /dev/mapper/p >"$out/p.sum"
    cp -r /etc/dmsnap/wrap "$out/wrap"
    # data: wrap, mkfs, files A, snapshot (mounted), files B.
    run dmsnap wrap data "$A"
    run mkfs.ext4 -q /dev/mapper/data
    mnt data
    files /mnt/data a 8
    sync
    run dmsnap snapshot data --cow "$C"
    files /mnt/data b 8
    sync
    umount /mnt/data
    sum /dev/mapper/data >"$out/data.sum"
    sum /dev/mapper/data-snap >"$out/data-snap.sum"
    # lost: its origin will not come back (a copy of it, another serial, will).
    run dmsnap wrap lost "$L"
    run mkfs.ext4 -q /dev/mapper/lost
    run dmsnap snapshot lost --cow "$CL"
    # d: dropped after the reboot.
    run dmsnap wrap d "$D"
    run mkfs.ext4 -q /dev/mapper/d
    run dmsnap snapshot d --cow "$CD"
    mnt d
    files /mnt/d x 4
    umount /mnt/d
    sum /dev/mapper/d >"$out/d.sum"
    # m: a rollback merging when the machine goes down.
    run dmsnap wrap m "$M"
    run mkfs.ext4 -q /dev/mapper/m
    mnt m
    files /mnt/m a 4
    umount /mnt/m
    run dmsnap snapshot m --cow "$CM"
    mnt m
    files /mnt/m big 160
    umount /mnt/m
    sum /dev/mapper/m-snap >"$out/m-snap.sum"
    run dmsnap rollback m
    dmsnap status m | tee "$out/m.status"
    grep -q merging "$out/m.status" && echo "reboot-test: m is merging at power-off"
    dmsnap ls >"$out/ls1"
    echo "REBOOT-TEST-PHASE-1-DONE"
    exit 0
fi

A=$(dev_of SA) && C=$(dev_of SC) && X=$(dev_of SX) && CL=$(dev_of SCL) &&
    M=$(dev_of SM) && CM=$(dev_of SCM) && D=$(dev_of SD) && CD=$(dev_of SCD) &&
    P=$(dev_of SP) || fail "a disk is missing"
dev_of SL >/dev/null && fail "the lost origin is attached"
[ -z "$(dmsetup ls 2>/dev/null | grep -v 'No devices')" ] || fail "dm devices before activate"

# A new wrapper, as if dmsnap were run again without activate: snapshot on the old COW refuses.
before=$(sum "$C")
run dmsnap wrap other "$X"
if dmsnap snapshot other --cow "$C" 2>/tmp/err; then fail "snapshot on a COW with a record succeeded"; fi
cat /tmp/err
grep -q "dmsnap activate" /tmp/err || fail "the refusal does not point to dmsnap activate"
grep -q "data-snap of data" /tmp/err || fail "the refusal does not name the snapshot and its origin"
grep -q "taken 20" /tmp/err || fail "the refusal does not give the time"
[ "$(sum "$C")" = "$before" ] || fail "the COW changed"
ok "snapshot refused the recorded COW, COW unchanged"
run dmsnap unwrap other

dmsnap activate >/tmp/act.out 2>/tmp/act.err
rc=$?
cat /tmp/act.out /tmp/act.err
[ "$rc" = 1 ] || fail "activate exited $rc, expected 1 (lost refused)"
grep -q "^data / data-snap (COW $C, origin $A, .*: activated$" /tmp/act.out || fail "data not activated"
grep -q "^d / d-snap (COW $CD, origin $D, .*: activated$" /tmp/act.out || fail "d not activated"
grep -q "^m / m-snap (COW $CM, origin $M, .*: merge-resumed$" /tmp/act.out || fail "m merge not resumed"
grep -q "^p (from /etc/dmsnap/wrap/p.conf, origin $P): activated$" /tmp/act.out || fail "p not activated"
[ "$(sum /dev/mapper/p)" = "$(cat /sums1/p.sum)" ] || fail "plain wrapper p changed"
grep "^lost / lost-snap" /tmp/act.out | grep -q "NOT activated.*$X is not it: its serial is SX" ||
    fail "lost: the refusal does not name $X and why"
dmsetup info lost >/dev/null 2>&1 && fail "a lost device was made"
dmsetup info lost-real >/dev/null 2>&1 && fail "lost-real was made"
ok "activate: data, d, m, p attached; lost refused"

[ "$(sum /dev/mapper/data)" = "$(cat /sums1/data.sum)" ] || fail "origin checksum changed over the reboot"
[ "$(sum /dev/mapper/data-snap)" = "$(cat /sums1/data-snap.sum)" ] || fail "snapshot checksum changed over the reboot"
ok "origin and snapshot have their checksums from before the reboot"

dmsnap activate --json >/tmp/act2.json
rc=$?
cat /tmp/act2.json
[ "$rc" = 1 ] || fail "second activate exited $rc"
[ "$(grep -o '"outcome":"already-active"' /tmp/act2.json | wc -l)" = 4 ] || fail "second activate did not find 4 active"
grep -q '"outcome":"activated"' /tmp/act2.json && fail "second activate activated again"
ok "activate is idempotent"
dmsetup info -c --noheadings -o name,suspended 2>/dev/null | grep -i ':Suspended' && fail "a device is suspended"

run dmsnap rollback data --wait
[ "$(sum /dev/mapper/data)" = "$(cat /sums1/data-snap.sum)" ] || fail "rollback: origin is not the snapshot"
mnt data
ls /mnt/data
[ -f /mnt/data/a-0 ] && [ -f /mnt/data/a-7 ] || fail "files A missing after rollback"
ls /mnt/data | grep -q '^b-' && fail "files B still there after rollback"
umount /mnt/data
ok "rollback after the reboot gives files A without B"
dmsnap cow inspect "$C" | grep -q "dmsnap record" && fail "record left on $C after the rollback"

run dmsnap rollback m --wait
[ "$(sum /dev/mapper/m)" = "$(cat /sums1/m-snap.sum)" ] || fail "the resumed merge did not give the snapshot"
dmsnap cow inspect "$CM" | grep -q "dmsnap record" && fail "record left on $CM after the merge"
ok "the interrupted merge resumed and completed"

run dmsnap drop d
[ "$(sum /dev/mapper/d)" = "$(cat /sums1/d.sum)" ] || fail "drop changed the origin"
dmsnap cow inspect "$CD" | grep -q "dmsnap record" && fail "record left on $CD after the drop"
ok "drop after the reboot keeps the origin"

out2=$(DMSNAP_CONFIG_DIR=/nonexistent dmsnap activate "$A" "$C" "$D" "$CD" "$M" "$CM") ||
    fail "activate after everything: $out2"
echo "$out2"
[ "$out2" = "no dmsnap snapshot found" ] || fail "records left after rollback/drop"
echo "REBOOT-TEST-OK"
