#!/usr/bin/env bash
# Run the dmsnap example against a real device-mapper kernel, inside the VM.
#
# Usage: scripts/vm/dmsnap.sh [--release] [DMSNAP ARGS...]
#
# Builds `cargo build --example dmsnap`, boots the guest, creates one demo device
# (`dmsetup create vm-demo` over a 64 MiB loop device) so there is something to list, and
# runs `dmsnap ARGS`; with no ARGS it runs `dmsnap version` then `dmsnap ls`.
# Exit code: dmsnap's (the first failing one), 124 on timeout.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

profile_args=()
if [[ "${1:-}" == "--release" ]]; then
    profile_args=(--release)
    shift
fi
ensure_cmds jq:jq cargo:cargo
cd "$REPO_ROOT"
dmsnap="$(cargo build --example dmsnap "${profile_args[@]+"${profile_args[@]}"}" \
    --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "dmsnap" and .executable != null) | .executable' |
    tail -n1)"
[[ -x "$dmsnap" ]] || die "cargo built no dmsnap example"

if (($# == 0)); then
    cmds='dmsnap version && dmsnap ls'
else
    cmds='dmsnap'
    for a in "$@"; do cmds+=" '${a//\'/\'\\\'\'}'"; done
fi
"$VM_DIR/run.sh" --timeout 300 --add "$dmsnap:/usr/local/bin/dmsnap" -- "set -e
truncate -s 64M /tmp/demo.img
loop=\$(losetup --find --show /tmp/demo.img)
dmsetup create vm-demo --table \"0 131072 linear \$loop 0\"
$cmds"
