#!/usr/bin/env bash
# Self-test of the VM harness (not of the crate): boots the guest three times and checks
#  1. the tools work: device-mapper, loop, lvm2 (linear, snapshot, thin), mdadm RAID1,
#     mkfs.ext4 + mount + e2fsck, and that a file written to $VM_OUT comes back;
#  2. a failing guest command gives its exit code back;
#  3. a hung guest is killed at --timeout with exit 124.
#
# Usage: scripts/vm/selftest.sh
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="$REPO_ROOT/target/vm/selftest-out"
fail() { die "selftest: $*"; }

log "selftest 1/3: tools in the guest"
"$VM_DIR/run.sh" --timeout 300 --out "$out" \
    --add "$VM_DIR/selftest/guest.sh:/selftest.sh" -- 'sh /selftest.sh' ||
    fail "the guest tool checks failed (exit $?)"
grep -q 'all checks passed' "$out/selftest.txt" || fail "no selftest.txt came back"
grep -q 'vmselfvg' "$out/vmselfvg.vg" || fail "the vgcfgbackup file did not come back"

log "selftest 2/3: a failing command"
rc=0
"$VM_DIR/run.sh" --timeout 120 --out "$out" -- 'echo failing on purpose; exit 7' || rc=$?
((rc == 7)) || fail "expected exit 7 from the guest, got $rc"

log "selftest 3/3: a hung command"
rc=0
"$VM_DIR/run.sh" --timeout 20 --out "$out" -- 'sleep 1000' || rc=$?
((rc == 124)) || fail "expected exit 124 (timeout), got $rc"

log "selftest: all 3 checks passed"
