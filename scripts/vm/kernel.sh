#!/usr/bin/env bash
# Fetch and cache the guest kernel: Debian's cloud kernel (the versioned package that
# `linux-image-cloud-amd64` depends on), unpacked with `dpkg-deb -x`, plus `depmod` output.
#
# Usage: scripts/vm/kernel.sh [--refresh]
#
# Prints shell assignments on stdout, for `eval "$(scripts/vm/kernel.sh)"`:
#   VM_KERNEL=<path to vmlinuz>  VM_MODULES=<dir lib/modules/VERSION>  VM_KVER=<VERSION>
#
# The cache lives in $VM_CACHE_DIR (default: .vm-cache/ at the repository root). Once a
# kernel is cached, later runs neither download nor ask apt anything; --refresh asks apt
# again which version `linux-image-cloud-amd64` points at (and downloads it if it is new).
# VM_KERNEL_PACKAGE=linux-image-X-cloud-amd64 pins a package instead of following the
# meta-package.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

refresh=0
case "${1:-}" in
--refresh) refresh=1 ;;
"") ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*) die "unknown argument: $1 (try --help)" ;;
esac

cache="$VM_CACHE_DIR/kernel"
mkdir -p "$cache"

# The versioned package name: pinned, remembered from an earlier run, or asked of apt.
resolve_package() {
    local pkg
    pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
    if [[ -z "$pkg" ]]; then
        log "apt does not know linux-image-cloud-amd64 yet; running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
    fi
    [[ -n "$pkg" ]] || die "cannot resolve the package behind linux-image-cloud-amd64"
    printf '%s\n' "$pkg"
}

if [[ -n "${VM_KERNEL_PACKAGE:-}" ]]; then
    pkg="$VM_KERNEL_PACKAGE"
elif ((refresh == 0)) && [[ -s "$cache/current" ]]; then
    pkg="$(cat "$cache/current")"
else
    pkg="$(resolve_package)"
fi
[[ "$pkg" =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || die "odd package name: $pkg"

root="$cache/$pkg/root"
if [[ ! -d "$root" ]]; then
    ensure_cmds dpkg-deb:dpkg apt-get:apt
    log "downloading $pkg"
    work="$cache/$pkg/download"
    rm -rf "$work" "$cache/$pkg/root.tmp"
    mkdir -p "$work"
    # apt-get download writes into the current directory, which apt's unprivileged _apt
    # user may not be able to write: as root, download as root.
    sandbox=()
    [[ $(id -u) -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$work" && apt-get download -qq "${sandbox[@]+"${sandbox[@]}"}" "$pkg" >&2) ||
        die "apt-get download $pkg failed"
    deb="$(find "$work" -maxdepth 1 -name '*.deb' | head -n1)"
    [[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
    dpkg-deb -x "$deb" "$cache/$pkg/root.tmp" || die "dpkg-deb -x $deb failed"
    rm -rf "$work"
    mv "$cache/$pkg/root.tmp" "$root"
fi
printf '%s\n' "$pkg" >"$cache/current"

kernel="$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n1)"
[[ -f "$kernel" ]] || die "no vmlinuz in $root/boot"
kver="${kernel##*/vmlinuz-}"
# Debian 12 ships /lib/modules; merged-/usr releases ship /usr/lib/modules.
base=""
for b in "$root" "$root/usr"; do
    [[ -d "$b/lib/modules/$kver" ]] && base="$b" && break
done
[[ -n "$base" ]] || die "no lib/modules/$kver under $root"
modules="$base/lib/modules/$kver"

# The .deb has no modules.dep (Debian's postinst runs depmod); make one so that run.sh can
# load every module after its dependencies.
if [[ ! -s "$modules/modules.dep" ]]; then
    ensure_cmds depmod:kmod
    depmod -b "$base" "$kver" || die "depmod for $kver failed"
fi

printf 'VM_KERNEL=%q\nVM_MODULES=%q\nVM_KVER=%q\n' "$kernel" "$modules" "$kver"
