# shellcheck shell=bash
# Shared helpers for the VM harness scripts; sourced, never run.

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$VM_DIR/../.." && pwd)"
VM_CACHE_DIR="${VM_CACHE_DIR:-$REPO_ROOT/.vm-cache}"

# Messages go to stderr so that stdout stays machine-readable where a script prints paths.
log() { printf '[vm] %s\n' "$*" >&2; }
die() {
    printf '[vm] error: %s\n' "$*" >&2
    exit 1
}

_apt_updated=0
# ensure_cmds CMD:PACKAGE...: install the Debian packages whose commands are missing.
# Runs `apt-get update` at most once per script run, and only when something is missing.
ensure_cmds() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd="${pair%%:*}"
        pkg="${pair#*:}"
        if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "$cmd" ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages and no apt-get: ${missing[*]}"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing: ${missing[*]}"
    if ((_apt_updated == 0)); then
        "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
        _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

# Debian keeps the tools this harness uses in sbin, which a non-root PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"
