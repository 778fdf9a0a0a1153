#!/usr/bin/env bash
# Power cuts by killing qemu: a series of boots over the same disk images, each boot (but
# the last) killed hard (SIGKILL of qemu, no shutdown, nothing flushed by the guest) at a
# random moment of its workload; the next boot checks what the cut left
# (scripts/vm/powercut/guest.sh does the work and the checks in the guest).
#
# Usage: scripts/vm/powercut-test.sh [--release] [--rounds N]
#
# Disks: two 64 MiB PVs (pvcreate/vgcreate by lvm2, on virtio disks backed by files here)
# and a small progress disk the guest writes a record to (with fsync) before and after
# each command, so the next boot knows which commit was the last one finished.
# Workloads, alternating: `commits`, dmsnap lvm lvcreate / snapshot (live, of an active
# LV holding checksummed data) / lvremove in a loop, killed after 0-2.5 s; `merge`, a
# running merge of 36 MiB of a snapshot into its origin (`dmsnap lvm merge`), killed
# 0-0.4 s after the guest saw it under way.
# Checks after a cut: lvm2's `vgck` clean and no warning; lvm2 and `dmsnap lvm scan`
# read the same seqno and the same LVs; after `commits` the seqno is the last committed
# one, or the next when a command was running; `dmsnap lvm activate` works and the data
# of the LV beside is intact; after `merge` the merge is still in the metadata, the
# activation (ours, or lvm2's `vgchange -ay` then ours to poll) resumes and finishes it,
# and the origin holds the snapshot's content (checksum), lvm2 shows no snapshot.
# --rounds N: N boots that are cut (default 4: commits, merge, commits, merge), then a
# last boot that only checks (the second merge resumed by lvm2's activation).
# Exit 0 when every boot passed. Images and logs: target/vm/powercut/.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

profile=debug
profile_args=()
rounds=4
while (($#)); do
    case "$1" in
    --release) profile=release && profile_args=(--release) && shift ;;
    --rounds) rounds="${2:?--rounds needs a number}" && shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a number >= 1"
cargo build --example dmsnap "${profile_args[@]+"${profile_args[@]}"}" >&2
dmsnap="${DMSNAP:-$REPO_ROOT/target/$profile/examples/dmsnap}"
[[ -x "$dmsnap" ]] || die "no dmsnap binary at $dmsnap"

dir="$REPO_ROOT/target/vm/powercut"
rm -rf "$dir"
mkdir -p "$dir"
truncate -s 1M "$dir/P.img"
truncate -s 64M "$dir/A.img"
truncate -s 64M "$dir/B.img"
common=(--strip --timeout 600 --add "$dmsnap:/usr/local/bin/dmsnap"
    --add "$VM_DIR/powercut/guest.sh:/powercut-guest.sh"
    --disk "$dir/P.img:SP" --disk "$dir/A.img:SA" --disk "$dir/B.img:SB")

# The progress record (sector 0 of the progress disk) as the host sees it now.
progress() { dd if="$dir/P.img" bs=512 count=1 2>/dev/null | tr -d '\000' | head -n1; }
descendants() {
    local p
    for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$p"
        descendants "$p"
    done
}
# The qemu process of the run.sh started as $1.
qemu_of() {
    local p
    for p in $(descendants "$1"); do
        [[ "$(ps -o comm= -p "$p" 2>/dev/null)" != qemu-system-* ]] || echo "$p"
    done
}

start=$(date +%s)
check=none
for ((r = 1; r <= rounds + 1; r++)); do
    if ((r > rounds)); then
        work=none
    elif ((r % 2 == 1)); then
        work=commits
    else
        work=merge
    fi
    ((r != 1)) || work=setup+commits
    log="$dir/boot$r.log"
    log "powercut test: boot $r: check $check, then $work"
    before="$(progress)"
    "$VM_DIR/run.sh" "${common[@]}" --out "$dir/out$r" -- "sh /powercut-guest.sh $r $check $work" >"$log" 2>&1 &
    vm=$!
    if [[ "$work" == none ]]; then
        rc=0
        wait "$vm" || rc=$?
        cat "$log"
        ((rc == 0)) && grep -q "POWERCUT-CHECK-OK $r" "$log" || die "powercut test: boot $r failed (exit $rc); see $log"
        break
    fi
    # The workload runs once the guest records its progress: two commands done, or the
    # merge under way (`snapshot-merge` status: sectors still allocated above metadata).
    case "$work" in
    merge) delay=$((RANDOM % 5)) ;;
    *) delay=$((RANDOM % 26)) ;;
    esac
    running() {
        [[ "$now" != "$before" ]] || return 1
        if [[ "$work" == merge ]]; then
            # (A merge already done when first seen is cut too; the log says so.)
            [[ "$now" =~ ^MERGING\ .*\ ([0-9]+)/[0-9]+\ ([0-9]+)$ ]]
        else
            [[ "$now" =~ ^DONE\ ([2-9]|[1-9][0-9]) ]]
        fi
    }
    waited=0
    until now="$(progress)" && running; do
        if ! kill -0 "$vm" 2>/dev/null; then
            cat "$log"
            die "powercut test: boot $r ended before its workload ran; see $log"
        fi
        ((waited++ < 3000)) || { kill "$vm" 2>/dev/null; die "powercut test: boot $r: no progress in 300 s"; }
        sleep 0.1
    done
    sleep "$((delay / 10)).$((delay % 10))"
    qemu="$(qemu_of "$vm")"
    [[ -n "$qemu" ]] || die "powercut test: boot $r: no qemu process found"
    kill -KILL $qemu
    wait "$vm" || true
    cat "$log"
    grep -q "POWERCUT-CHECK-OK $r" "$log" || die "powercut test: boot $r: the check failed; see $log"
    ! grep -q POWERCUT-TEST-FAIL "$log" || die "powercut test: boot $r failed; see $log"
    log "powercut test: boot $r cut $((delay / 10)).$((delay % 10)) s into $work; last record: $(progress)"
    case "$work" in
    merge) if ((r % 4 == 0)); then check=merge-lvm2; else check=merge-ours; fi ;;
    *) check=commits ;;
    esac
done
log "powercut test: passed ($((r - 1)) power cuts, $(($(date +%s) - start)) s)"
