#!/usr/bin/env bash
# Run kernel-side benchmarks inside the VM, against a real device-mapper.
#
# Usage: scripts/vm/bench.sh [--timeout S] [--env NAME=VALUE]... [BENCH...]
#
# Builds `cargo bench --no-run --bench BENCH` (default BENCH: dm_cycles), boots the guest
# and runs each bench executable with `--bench` from its package directory. DM_BENCH_*
# variables set here are passed into the guest. Output goes to the console and to
# target/vm/out/bench-<name>.txt. Exit code: the first failing bench's, 124 on timeout.
# TCG emulates the CPU, so absolute times are slow; compare ratios measured in one run.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout_s=1800
envs=()
while (($#)); do
    case "$1" in
    --timeout) timeout_s="${2:?--timeout needs seconds}" && shift 2 ;;
    --env) envs+=(--env "${2:?--env needs NAME=VALUE}") && shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
    -*) die "unknown option: $1 (try --help)" ;;
    *) break ;;
    esac
done
benches=("$@")
((${#benches[@]} > 0)) || benches=(dm_cycles)

ensure_cmds jq:jq cargo:cargo
cd "$REPO_ROOT"
bench_args=()
for b in "${benches[@]}"; do bench_args+=(--bench "$b"); done
mapfile -t built < <(cargo bench --no-run "${bench_args[@]}" --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null and (.target.kind | index("bench")))
        | "\(.target.name)\t\(.executable)\t\(.manifest_path | rtrimstr("/Cargo.toml"))"')
((${#built[@]} > 0)) || die "cargo built no bench executables for: ${benches[*]}"

add=()
script="set -e"
for line in "${built[@]}"; do
    IFS=$'\t' read -r name exe dir <<<"$line"
    add+=(--add "$exe:/vmbench/$name")
    script+="
echo '===== vm-bench: $name'
mkdir -p '$dir' && cd '$dir'
{ /vmbench/$name --bench; echo \$? >/tmp/rc; } 2>&1 | tee \"\$VM_OUT/bench-$name.txt\"
rc=\$(cat /tmp/rc)
[ \"\$rc\" -eq 0 ] || { echo 'vm-bench: $name failed'; exit \"\$rc\"; }
cd /"
done
while IFS='=' read -r name _; do
    [[ "$name" == DM_BENCH_* ]] && envs+=(--env "$name=${!name}")
done < <(env)

"$VM_DIR/run.sh" --timeout "$timeout_s" --strip "${add[@]}" "${envs[@]+"${envs[@]}"}" -- "$script"
