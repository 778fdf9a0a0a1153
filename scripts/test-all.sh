#!/usr/bin/env bash
# Run all tests: the unprivileged suite on this host (`cargo test --workspace`, where tests
# that need device-mapper skip with a printed reason), then every test executable again
# inside a VM with a real device-mapper kernel (scripts/vm/test.sh), where they must run,
# then the reboot test (scripts/vm/reboot-test.sh: two boots with the same disks) and the
# power-cut test (scripts/vm/powercut-test.sh: qemu killed during commits and a merge).
#
# Usage: scripts/test-all.sh [--release] [-- ARGS for the test binaries in the VM]
#   --release builds both runs with the release profile. Options of scripts/vm/test.sh
#   (--timeout, --test-timeout, --env, --no-strip) pass through as well.
#
# Exits non-zero if either run fails. The last line sums both runs.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/vm/lib.sh"
cd "$REPO_ROOT"

profile_args=()
for a in "$@"; do
    [[ "$a" != "--" ]] || break
    [[ "$a" != "--release" ]] || profile_args=(--release)
done

mkdir -p target
host_log="$REPO_ROOT/target/host-tests.log"
vm_log="$REPO_ROOT/target/vm-tests.log"

echo "=== host: cargo test --workspace ${profile_args[*]:-}"
host_start=$(date +%s)
set +e
cargo test --workspace "${profile_args[@]+"${profile_args[@]}"}" 2>&1 | tee "$host_log"
host_rc=${PIPESTATUS[0]}
set -e
host_time=$(($(date +%s) - host_start))

echo "=== vm: scripts/vm/test.sh $*"
vm_start=$(date +%s)
set +e
"$REPO_ROOT/scripts/vm/test.sh" "$@" 2>&1 | tee "$vm_log"
vm_rc=${PIPESTATUS[0]}
set -e
vm_time=$(($(date +%s) - vm_start))

echo "=== vm: scripts/vm/reboot-test.sh ${profile_args[*]:-}"
reboot_log="$REPO_ROOT/target/vm-reboot-test.log"
reboot_start=$(date +%s)
set +e
"$REPO_ROOT/scripts/vm/reboot-test.sh" "${profile_args[@]+"${profile_args[@]}"}" 2>&1 | tee "$reboot_log"
reboot_rc=${PIPESTATUS[0]}
set -e
reboot_time=$(($(date +%s) - reboot_start))

echo "=== vm: scripts/vm/powercut-test.sh ${profile_args[*]:-}"
powercut_log="$REPO_ROOT/target/vm-powercut-test.log"
powercut_start=$(date +%s)
set +e
"$REPO_ROOT/scripts/vm/powercut-test.sh" "${profile_args[@]+"${profile_args[@]}"}" 2>&1 | tee "$powercut_log"
powercut_rc=${PIPESTATUS[0]}
set -e
powercut_time=$(($(date +%s) - powercut_start))

# sum_results LOG: "passed failed ignored" over libtest's `test result:` lines.
sum_results() {
    grep -h '^test result:' "$1" |
        sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/' |
        awk '{ p += $1; f += $2; i += $3 } END { printf "%d %d %d\n", p, f, i }'
}
read -r hp hf hi < <(sum_results "$host_log")
# scripts/vm/test.sh ends with "vm-tests: P passed, F failed, I skipped" (timeouts counted).
read -r vp vf vi < <(sed -nE 's/^vm-tests: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/p' "$vm_log" |
    tail -n1 | grep . || echo "0 0 0")
echo
echo "host: $hp passed, $hf failed, $hi ignored (exit $host_rc, ${host_time}s)"
echo "vm:   $vp passed, $vf failed, $vi ignored (exit $vm_rc, ${vm_time}s)"
echo "reboot test: $( ((reboot_rc == 0)) && echo passed || echo FAILED) (exit $reboot_rc, ${reboot_time}s)"
echo "power-cut test: $( ((powercut_rc == 0)) && echo passed || echo FAILED) (exit $powercut_rc, ${powercut_time}s)"
status=0
((host_rc == 0)) || { echo "FAILED: host tests (exit $host_rc)" && status=1; }
((vm_rc == 0)) || { echo "FAILED: VM tests (exit $vm_rc; see target/vm/console.log)" && status=1; }
((reboot_rc == 0)) || { echo "FAILED: reboot test (exit $reboot_rc; see target/vm/reboot/)" && status=1; }
((powercut_rc == 0)) || { echo "FAILED: power-cut test (exit $powercut_rc; see target/vm/powercut/)" && status=1; }
# The reboot test and the power-cut test count as one test each.
if ((reboot_rc == 0)); then vp=$((vp + 1)); else vf=$((vf + 1)); fi
if ((powercut_rc == 0)); then vp=$((vp + 1)); else vf=$((vf + 1)); fi
# A run that failed without a failing test (build error, VM crash) counts as one failure.
((vm_rc == 0 || vf > 0)) || vf=1
((host_rc == 0 || hf > 0)) || hf=1
echo "all-tests: $((hp + vp)) passed, $((hf + vf)) failed, $((hi + vi)) skipped"
exit "$status"
