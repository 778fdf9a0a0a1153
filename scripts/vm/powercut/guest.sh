#!/bin/sh
# Guest half of scripts/vm/powercut-test.sh: `sh guest.sh ROUND CHECK WORK`, one boot of a
# series over the same disk images, the VM killed hard (SIGKILL of qemu) while WORK runs.
#   CHECK: none | commits | merge-ours | merge-lvm2 | final: what the previous boot left
#          is checked first (after a power cut in the middle of that boot's WORK);
#   WORK:  setup+commits | commits | merge | none: what this boot does until it is killed.
# Disks by serial: SP the progress disk (one 512-byte record per sector, each written
# with fsync: sector 0 the workload's progress, sector 1 the merge's expected checksum),
# SA and SB the two PVs (lvm2-made, one metadata area each).
# Prints POWERCUT-CHECK-OK ROUND after the check, POWERCUT-WORK-STARTED when WORK runs,
# POWERCUT-TEST-FAIL: ... and exits 1 on the first failed check.
set -u
round="$1" check="$2" work="$3"
vg=pc
fail() {
    echo "POWERCUT-TEST-FAIL: round $round: $*"
    exit 1
}
ok() { echo "powercut-test: round $round: ok: $*"; }
dev_of() {
    for s in /sys/block/vd*; do
        if [ "$(cat "$s/serial" 2>/dev/null)" = "$1" ]; then
            echo "/dev/${s##*/}"
            return 0
        fi
    done
    return 1
}
P=$(dev_of SP) || fail "no progress disk"
A=$(dev_of SA) || fail "no disk SA"
B=$(dev_of SB) || fail "no disk SB"
# lvm2 scans only these two disks (the harness's lvm.conf accepts loop devices only).
sed -i "s#\"a|^/dev/loop|\"#\"a|^${A}\$|\", \"a|^${B}\$|\"#" /etc/lvm/lvm.conf
grep -q "a|^${A}" /etc/lvm/lvm.conf || fail "could not set lvm2's filter"
export LVM_SUPPRESS_FD_WARNINGS=1

# record SECTOR TEXT: one record, on the disk (fsync) before this returns.
record() {
    printf '%s\n' "$2" | dd of="$P" bs=512 count=1 seek="$1" conv=sync,notrunc,fsync 2>/dev/null ||
        fail "writing the progress record"
}
recorded() { dd if="$P" bs=512 count=1 skip="$1" 2>/dev/null | tr -d '\000' | head -n1; }
run() {
    echo "+ $*"
    "$@" || fail "$* (exit $?)"
}
# lvm2 judging the VG: vgck clean, no warning at all (checksums, copies that disagree).
lvm2_clean() {
    out=$(lvm vgck "$vg" 2>&1) || fail "vgck $vg: $out"
    case "$out" in *WARNING* | *arning* | *hecksum* | *rror*) fail "vgck $vg: $out" ;; esac
}
lvm2_seqno() {
    out=$(lvm vgs --noheadings -o vg_seqno "$vg" 2>&1) || fail "vgs: $out"
    case "$out" in *WARNING* | *hecksum*) fail "vgs: $out" ;; esac
    echo "$out" | tr -d ' '
}
our_seqno() {
    out=$(dmsnap lvm scan "$A" "$B" 2>&1) || fail "dmsnap lvm scan: $out"
    case "$out" in *disagree* | *INCOMPLETE* | *arning*) fail "dmsnap lvm scan: $out" ;; esac
    echo "$out" | sed -n "s/^VG $vg .* seqno \([0-9]*\) .*/\1/p"
}
lvm2_lvs() { lvm lvs --noheadings -o lv_name "$vg" 2>/dev/null | tr -d ' ' | sort | tr '\n' ' '; }
our_lvs() { dmsnap lvm lvs "$vg" 2>/dev/null | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' '; }
node() {
    dmsetup mknodes >/dev/null 2>&1
    echo "/dev/mapper/$vg-$1"
}
sum() { sha256sum <"$1" | cut -d' ' -f1; }

# Both readers agree on the VG and on its LVs; lvm2 finds nothing wrong.
agree() {
    lvm2_clean
    s2=$(lvm2_seqno)
    s1=$(our_seqno)
    [ -n "$s1" ] && [ "$s1" = "$s2" ] || fail "seqno: lvm2 $s2, dmsnap $s1"
    l2=$(lvm2_lvs)
    l1=$(our_lvs)
    [ "$l1" = "$l2" ] || fail "LVs: lvm2 [$l2], dmsnap [$l1]"
}

echo "powercut-test round $round: check $check, then $work; PVs $A $B, progress $P"
case "$check" in
none) ;;
commits)
    agree
    rec=$(recorded 0)
    echo "powercut-test: last progress record: $rec"
    set -- $rec
    [ $# -eq 3 ] || fail "bad progress record: $rec"
    case "$1" in
    # The command had returned: its commit is on disk.
    DONE) [ "$s2" -eq "$3" ] || fail "seqno $s2 after command $2 had committed $3" ;;
    # It was running: the last committed seqno or the one it was writing.
    BEGIN) [ "$s2" -eq "$3" ] || [ "$s2" -eq $(($3 + 1)) ] ||
        fail "seqno $s2 while command $2 ran from $3" ;;
    *) fail "bad progress record: $rec" ;;
    esac
    ok "lvm2 and dmsnap read seqno $s2 (progress: $rec), LVs [$l2]"
    run dmsnap lvm activate "$vg"
    [ "$(sum "$(node keep)")" = "$(recorded 1 | cut -d' ' -f2)" ] || fail "keep's data changed"
    lvm2_clean
    ok "activated; keep's data intact; vgck clean"
    ;;
merge-ours | merge-lvm2)
    agree
    rec=$(recorded 0)
    echo "powercut-test: last progress record: $rec"
    want=$(recorded 1 | cut -d' ' -f3)
    [ -n "$want" ] || fail "no merge checksum recorded"
    # Nothing polled the merge: the snapshot is still in the metadata, merging.
    lvm lvs -a --noheadings -o lv_name,lv_attr "$vg" | grep -q '^ *\[ms\] *Swi' ||
        fail "the merging snapshot: $(lvm lvs -a "$vg" 2>&1)"
    if [ "$check" = merge-lvm2 ]; then
        # lvm2's activation resumes the merge; dmsnap polls and finishes it.
        run lvm vgchange -ay --poll n "$vg"
        dmsetup table "$vg-mo" | grep -q snapshot-merge || fail "lvm2 did not resume the merge: $(dmsetup table)"
        ok "lvm2's vgchange -ay resumed the merge: $(dmsetup status "$vg-mo")"
    fi
    run dmsnap lvm activate "$vg"
    lvm lvs -a --noheadings -o lv_name "$vg" | grep -q 'ms' && fail "the snapshot is still there"
    dmsetup table "$vg-mo" | grep -q '^0 [0-9]* linear' || fail "origin table: $(dmsetup table "$vg-mo")"
    [ "$(dmsetup ls | grep -c "^$vg-")" -eq 2 ] || fail "devices: $(dmsetup ls)"
    [ "$(sum "$(node mo)")" = "$want" ] || fail "the origin does not hold the snapshot's content"
    agree
    ok "merge resumed and finished; the origin holds the snapshot's content; vgck clean"
    run dmsnap lvm lvremove "$vg/mo"
    ;;
final)
    agree
    ok "final state read alike by lvm2 and dmsnap"
    ;;
*) fail "unknown check $check" ;;
esac
echo "POWERCUT-CHECK-OK $round"

case "$work" in
none) exit 0 ;;
setup+commits)
    run lvm pvcreate -y "$A" "$B"
    run lvm vgcreate -s 1M "$vg" "$A" "$B"
    run lvm lvcreate -y -L 8M -n keep "$vg"
    dd if=/dev/urandom of="$(node keep)" bs=64k count=128 2>/dev/null || fail "writing keep"
    record 1 "keep $(sum "$(node keep)")"
    ;;
esac
# Back to keep alone (what the last round's commands left is removed).
for lv in $(lvm2_lvs); do
    [ "$lv" = keep ] || run dmsnap lvm lvremove --force "$vg/$lv"
done
if [ "$work" = merge ]; then
    run dmsnap lvm lvcreate "$vg/mo" --size 40M
    dd if=/dev/urandom of="$(node mo)" bs=64k count=640 conv=fsync 2>/dev/null || fail "writing mo"
    run dmsnap lvm snapshot "$vg/mo" --size 44M --name ms
    want=$(sum "$(node mo)")
    # 36 MiB changed: the merge copies them back, chunk by chunk.
    dd if=/dev/urandom of="$(node mo)" bs=64k count=576 conv=fsync 2>/dev/null || fail "writing mo"
    [ "$(sum "$(node ms)")" = "$want" ] || fail "the snapshot changed"
    record 1 "$(recorded 1 | cut -d' ' -f1-2) $want"
    # kcopyd at a tenth of its time (dm-snapshot's copy throttle, which the merge uses):
    # the merge lasts seconds, and the cut falls inside it. The next boot has the
    # default again.
    echo 10 >/sys/module/dm_snapshot/parameters/snapshot_copy_throttle ||
        fail "setting dm-snapshot's copy throttle"
    run dmsnap lvm merge "$vg/ms"
    echo "POWERCUT-WORK-STARTED"
    while :; do
        record 0 "MERGING $(dmsetup status "$vg-mo")"
        sleep 0.1
    done
fi
# Commits until the power goes: lvcreate, a live snapshot of keep, and the removal of
# both, over and over; each command one commit.
seq=$(lvm2_seqno)
echo "POWERCUT-WORK-STARTED at seqno $seq"
i=0
while :; do
    i=$((i + 1))
    c=$(((i - 1) / 4))
    case $(((i - 1) % 4)) in
    0) set -- lvcreate "$vg/l$c" --size 4M ;;
    1) set -- snapshot "$vg/keep" --size 4M --name "s$c" ;;
    2) set -- lvremove "$vg/l$c" ;;
    3) set -- lvremove "$vg/s$c" ;;
    esac
    record 0 "BEGIN $i $seq"
    dmsnap lvm "$@" >/dev/null || fail "dmsnap lvm $* (exit $?)"
    seq=$((seq + 1))
    record 0 "DONE $i $seq"
done
