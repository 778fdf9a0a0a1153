#!/usr/bin/env bash
# A real reboot: boot the VM twice with the same disk images, attached in another order the
# second time (scripts/vm/reboot/guest.sh does the checks in the guest).
#
# Usage: scripts/vm/reboot-test.sh [--release]
#
# Boot 1: wrap, mkfs, files A, snapshot, files B (data); a snapshot whose origin will be gone
# (lost); one to drop (d); a rollback left merging at power-off (m).
# Between the boots the host copies lost's disk to a new image with another serial, and
# leaves the original out.
# Boot 2 (disks reversed): `snapshot` on data's COW refuses and leaves it unchanged;
# `dmsnap activate` attaches data, d and m (merge resumed) and refuses lost, naming the copy;
# checksums are those from before the reboot; activate again changes nothing; rollback gives
# files A without B; the merge completes; drop keeps the origin; no record is left.
# Exit 0 when the guest printed REBOOT-TEST-OK. Images and logs: target/vm/reboot/.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

profile=debug
profile_args=()
[[ "${1:-}" != "--release" ]] || { profile=release && profile_args=(--release); }
cargo build --example dmsnap "${profile_args[@]+"${profile_args[@]}"}" >&2
dmsnap="${DMSNAP:-$REPO_ROOT/target/$profile/examples/dmsnap}"
[[ -x "$dmsnap" ]] || die "no dmsnap binary at $dmsnap"

dir="$REPO_ROOT/target/vm/reboot"
rm -rf "$dir"
mkdir -p "$dir"
# name size: images of the disks.
for spec in A:64M C:32M L:64M CL:16M M:64M CM:64M D:32M CD:16M P:16M; do
    truncate -s "${spec#*:}" "$dir/${spec%%:*}.img"
done
common=(--strip --timeout 900 --add "$dmsnap:/usr/local/bin/dmsnap"
    --add "$VM_DIR/reboot/guest.sh:/reboot-guest.sh")

log "reboot test: boot 1"
set +e
"$VM_DIR/run.sh" "${common[@]}" --out "$dir/out1" \
    --disk "$dir/A.img:SA" --disk "$dir/C.img:SC" --disk "$dir/L.img:SL" --disk "$dir/CL.img:SCL" \
    --disk "$dir/M.img:SM" --disk "$dir/CM.img:SCM" --disk "$dir/D.img:SD" --disk "$dir/CD.img:SCD" \
    --disk "$dir/P.img:SP" -- 'sh /reboot-guest.sh 1' >"$dir/boot1.log" 2>&1
rc=$?
set -e
cat "$dir/boot1.log"
((rc == 0)) && grep -q REBOOT-TEST-PHASE-1-DONE "$dir/boot1.log" || die "reboot test: boot 1 failed (exit $rc)"

# The lost origin's twin: same size and filesystem uuid, another serial.
cp --sparse=always "$dir/L.img" "$dir/X.img"
mkdir -p "$dir/sums1"
cp "$dir/out1/"*.sum "$dir/sums1/"

log "reboot test: boot 2 (disks in reverse order, lost's origin replaced by a copy)"
set +e
"$VM_DIR/run.sh" "${common[@]}" --out "$dir/out2" --add "$dir/sums1:/sums1" \
    --add "$dir/out1/wrap:/etc/dmsnap/wrap" --disk "$dir/P.img:SP" --disk "$dir/CD.img:SCD" --disk "$dir/D.img:SD" --disk "$dir/CM.img:SCM" --disk "$dir/M.img:SM" \
    --disk "$dir/CL.img:SCL" --disk "$dir/X.img:SX" --disk "$dir/C.img:SC" --disk "$dir/A.img:SA" \
    -- 'sh /reboot-guest.sh 2' >"$dir/boot2.log" 2>&1
rc=$?
set -e
cat "$dir/boot2.log"
if ((rc == 0)) && grep -q REBOOT-TEST-OK "$dir/boot2.log"; then
    log "reboot test: passed"
    exit 0
fi
die "reboot test: boot 2 failed (exit $rc); see $dir/boot2.log"
