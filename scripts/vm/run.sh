#!/usr/bin/env bash
# Boot Debian's cloud kernel under qemu (TCG) and run one shell command inside, as root.
#
# Usage:
#   scripts/vm/run.sh [options] -- 'shell command run in the guest'
#
# Options:
#   --timeout S          kill the VM after S seconds (default 600); exit 124 then
#   --add HOST[:GUEST]   copy a file or directory into the guest (repeatable). GUEST
#                        defaults to the same absolute path as on the host. ELF files
#                        bring the shared libraries `ldd` lists.
#   --env NAME=VALUE     export a variable to the command (repeatable)
#   --out DIR            where the guest's /out comes back (default target/vm/out; emptied)
#   --strip              strip debug info from added ELF files (smaller, faster boots)
#   --disk FILE[:SERIAL] attach a raw disk image as one more virtio disk (repeatable): the
#                        first is /dev/vdb, the next /dev/vdc, ... in the order given; the
#                        guest sees SERIAL in /sys/block/vdX/serial. Writes persist in FILE
#                        (boot again with the same files: a reboot).
#   --mem MB             guest memory (default 2048)
#   --smp N              guest CPUs (default 2)
#
# The guest has: devtmpfs on /dev, proc, sysfs, tmpfs on /tmp and /run; device-mapper
# (dm-mod, dm-bufio, dm-snapshot, dm-zero, dm-thin-pool and deps), loop, md (raid1), xfs, btrfs;
# busybox applets; dmsetup, lvm (+ pvcreate/vgcreate/... links; /etc/lvm/lvm.conf set up
# for a system without udev), mdadm, mke2fs/mkfs.ext4, e2fsck, losetup (util-linux),
# mkfs.xfs, xfs_repair, xfs_admin, xfs_db, mkfs.btrfs, btrfs.
# No udev runs: /dev/dm-N nodes appear by themselves, /dev/mapper/<name> nodes do not.
# The command runs in `sh` (dash) from /, with $VM_OUT=/out: whatever it writes
# there is copied back to --out. Its stdout and stderr go to the serial console, which is
# printed here and kept in target/vm/console.log.
#
# Exit code: the command's exit code; 124 on timeout; 125 when the guest gave no exit code
# (kernel panic, crash, harness error). Caches the kernel and the base initramfs in
# $VM_CACHE_DIR (default .vm-cache/). VM_MODULES_EXTRA="a b" loads more modules.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

timeout_s=600
mem=2048
smp=2
strip=0
out_dir="$REPO_ROOT/target/vm/out"
adds=()
envs=()
disks=()
while (($#)); do
    case "$1" in
    --timeout) timeout_s="${2:?--timeout needs seconds}" && shift 2 ;;
    --add) adds+=("${2:?--add needs a path}") && shift 2 ;;
    --env) envs+=("${2:?--env needs NAME=VALUE}") && shift 2 ;;
    --disk) disks+=("${2:?--disk needs FILE[:SERIAL]}") && shift 2 ;;
    --out) out_dir="${2:?--out needs a directory}" && shift 2 ;;
    --mem) mem="${2:?--mem needs MB}" && shift 2 ;;
    --smp) smp="${2:?--smp needs a count}" && shift 2 ;;
    --strip) strip=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    --) shift && break ;;
    *) die "unknown argument: $1 (the guest command goes after --; try --help)" ;;
    esac
done
(($# == 1)) || die "give exactly one guest command after -- (try --help)"
guest_cmd="$1"
[[ "$timeout_s" =~ ^[0-9]+$ && "$mem" =~ ^[0-9]+$ && "$smp" =~ ^[0-9]+$ ]] ||
    die "--timeout, --mem and --smp take numbers"

ensure_cmds qemu-system-x86_64:qemu-system-x86 /bin/busybox:busybox-static cpio:cpio \
    depmod:kmod dmsetup:dmsetup lvm:lvm2 mdadm:mdadm mke2fs:e2fsprogs losetup:mount \
    gzip:gzip flock:util-linux timeout:coreutils ldd:libc-bin dash:dash \
    mkfs.xfs:xfsprogs mkfs.btrfs:btrfs-progs
eval "$("$VM_DIR/kernel.sh")"

# Modules the guest loads, each after its dependencies (from modules.dep).
MODULES=(dm-mod dm-bufio dm-snapshot dm-zero loop dm-log-writes dm-flakey
    libcrc32c dm-persistent-data dm-bio-prison dm-thin-pool
    md-mod raid1
    xfs btrfs
    virtio_pci virtio_blk)
read -ra extra_modules <<<"${VM_MODULES_EXTRA:-}"
MODULES+=("${extra_modules[@]+"${extra_modules[@]}"}")
# Real tools, copied with their libraries into /usr/local/sbin (ahead of busybox in PATH).
TOOLS=(dmsetup lvm mdadm mke2fs e2fsck losetup blkid mkfs.xfs xfs_repair xfs_admin xfs_db mkfs.btrfs btrfs)
LVM_LINKS=(pvcreate pvremove pvs pvscan pvdisplay pvchange pvresize
    vgcreate vgremove vgs vgscan vgdisplay vgchange vgextend vgreduce vgcfgbackup
    vgcfgrestore vgrename vgmknodes lvcreate lvremove lvs lvscan lvdisplay lvchange
    lvextend lvreduce lvresize lvrename lvconvert)

# ---------------------------------------------------------------------------------------
# Copying files with their libraries into a staging tree.

# copy_file SRC DEST_IN_STAGE: copy (dereferencing links); for dynamic ELF files also the
# libraries and loader that ldd names, at their own paths.
copy_file() {
    local src="$1" dest="$2" lib
    mkdir -p "$(dirname "$dest")"
    cp -L --preserve=mode "$src" "$dest"
    is_elf "$src" || return 0
    ((strip == 0)) || strip --strip-debug "$dest" 2>/dev/null || true
    # `ldd` prints "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)".
    while read -r lib; do
        [[ -n "$lib" && ! -e "$stage$lib" ]] || continue
        mkdir -p "$stage$(dirname "$lib")"
        cp -L "$lib" "$stage$lib"
    done < <(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

is_elf() {
    [[ -f "$1" && "$(head -c4 "$1" | od -An -c | tr -d ' ')" == '177ELF' ]]
}

# new_stage DIR: an empty merged-/usr root.
new_stage() {
    stage="$1"
    rm -rf "$stage"
    mkdir -p "$stage"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/sbin,usr/local/bin}
    ln -s usr/bin "$stage/bin"
    ln -s usr/sbin "$stage/sbin"
    ln -s usr/lib "$stage/lib"
    ln -s usr/lib64 "$stage/lib64"
    mkdir -p "$stage"/{dev,proc,sys,tmp,run,out,root,etc/vm,var}
    ln -s ../run "$stage/var/run"
    ln -s ../run/lock "$stage/var/lock"
}

# make_cpio STAGE OUTPUT [gzip]: a newc archive of STAGE, owned by root.
make_cpio() {
    local stage="$1" output="$2" compress="${3:-}"
    if [[ -n "$compress" ]]; then
        (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$output.tmp"
        # The kernel reads a following uncompressed archive only at a 4-byte aligned offset.
        truncate -s %512 "$output.tmp"
    else
        (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$output.tmp"
    fi
    mv "$output.tmp" "$output"
}

# ---------------------------------------------------------------------------------------
# The base initramfs: busybox, tools, configuration, modules, /init. Cached by content.

mod_norm() { printf '%s' "${1//-/_}"; }

# resolve_module NAME: print modules.dep paths of NAME's dependencies, then NAME itself.
declare -A mod_seen=()
resolve_module() {
    local want path dep
    local -a deps
    want="$(mod_norm "$1")"
    path="$(awk -F: -v want="$want" '{
        n = $1; sub(/.*\//, "", n); sub(/\.ko(\..*)?$/, "", n); gsub(/-/, "_", n)
        if (n == want) { print $1; exit }
    }' "$VM_MODULES/modules.dep")"
    if [[ -z "$path" ]]; then
        if grep -Eq "/${1}\.ko(\..*)?\$|/$(mod_norm "$1")\.ko(\..*)?\$" "$VM_MODULES/modules.builtin" 2>/dev/null; then
            echo "vm: module $1: built into the kernel" >>"$stage/etc/vm/modules.notes"
        else
            echo "vm: module $1: not found in $VM_KVER (skipped)" >>"$stage/etc/vm/modules.notes"
            log "module $1 not found in $VM_KVER; skipping it"
        fi
        return 0
    fi
    [[ -z "${mod_seen[$path]:-}" ]] || return 0
    mod_seen[$path]=1
    read -ra deps < <(awk -F': *' -v p="$path" '$1 == p { print $2; exit }' "$VM_MODULES/modules.dep") || true
    # modules.dep lists dependencies with the most basic last.
    for dep in $(printf '%s\n' "${deps[@]+"${deps[@]}"}" | tac); do
        resolve_module "$(basename "${dep%%.ko*}")"
    done
    printf '%s\n' "$path" >>"$stage/etc/vm/modules"
    mkdir -p "$stage/lib/modules/vm/$(dirname "$path")"
    case "$path" in
    *.ko) cp "$VM_MODULES/$path" "$stage/lib/modules/vm/$path" ;;
    *.ko.xz) xz -dc "$VM_MODULES/$path" >"$stage/lib/modules/vm/${path%.xz}" ;;
    *.ko.zst) zstd -qdc "$VM_MODULES/$path" >"$stage/lib/modules/vm/${path%.zst}" ;;
    *.ko.gz) gzip -dc "$VM_MODULES/$path" >"$stage/lib/modules/vm/${path%.gz}" ;;
    *) die "unknown module file type: $path" ;;
    esac
    # insmod takes the uncompressed name.
    sed -i "\$s/\\.ko\\..*\$/.ko/" "$stage/etc/vm/modules"
}

build_base() {
    local dest="$1" tool path applet
    new_stage "$dest.stage"
    cp -L /bin/busybox "$stage/usr/bin/busybox"
    # Debian's busybox ash runs its own applets ahead of PATH (SH_STANDALONE), so busybox's
    # losetup would shadow util-linux's. dash as /bin/sh looks commands up in PATH.
    copy_file "$(command -v dash)" "$stage/usr/bin/dash"
    ln -s dash "$stage/usr/bin/sh"
    while read -r applet; do
        [[ -e "$stage/$applet" || -L "$stage/$applet" ]] || ln -s /usr/bin/busybox "$stage/$applet"
    done < <(/bin/busybox --list-full)
    for tool in "${TOOLS[@]}"; do
        path="$(command -v "$tool")" || die "$tool not found on the host"
        copy_file "$path" "$stage/usr/local/sbin/$tool"
    done
    for tool in "${LVM_LINKS[@]}"; do ln -s lvm "$stage/usr/local/sbin/$tool"; done
    ln -s mke2fs "$stage/usr/local/sbin/mkfs.ext4"
    ln -s mke2fs "$stage/usr/local/sbin/mkfs.ext2"
    ln -s e2fsck "$stage/usr/local/sbin/fsck.ext4"
    [[ ! -f /etc/mke2fs.conf ]] || cp /etc/mke2fs.conf "$stage/etc/mke2fs.conf"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
    printf 'root:x:0:\ndisk:x:6:\n' >"$stage/etc/group"
    mkdir -p "$stage/etc/lvm/backup" "$stage/etc/lvm/archive"
    cat >"$stage/etc/lvm/lvm.conf" <<'EOF'
# No udev in the test guest: libdevmapper creates /dev/mapper and /dev/VG nodes itself.
devices {
    # PVs in the tests live on loop devices: scanning only those keeps lvm from opening
    # (and briefly holding) other tests' dm devices.
    global_filter = [ "a|^/dev/loop|", "r|.*|" ]
    obtain_device_list_from_udev = 0
    external_device_info_source = "none"
    use_devicesfile = 0
}
activation {
    udev_sync = 0
    udev_rules = 0
    verify_udev_operations = 0
    monitoring = 0
}
global {
    thin_check_executable = ""
    use_lvmpolld = 0
    event_activation = 0
}
EOF
    : >"$stage/etc/vm/modules"
    : >"$stage/etc/vm/modules.notes"
    for m in "${MODULES[@]}"; do resolve_module "$m"; done
    install -m 0755 "$VM_DIR/init.sh" "$stage/init"
    # The kernel opens /dev/console before /init runs; only root can make the node.
    [[ $(id -u) -ne 0 ]] || mknod -m 0600 "$stage/dev/console" c 5 1
    make_cpio "$stage" "$dest" gzip
    rm -rf "$stage"
}

base_key() {
    local t
    {
        cat "$VM_DIR/run.sh" "$VM_DIR/init.sh" "$VM_DIR/lib.sh"
        echo "$VM_KVER ${MODULES[*]} $(id -u)"
        for t in /bin/busybox dash "${TOOLS[@]}"; do stat -L -c '%n %s %Y' "$(command -v "$t")"; done
    } | sha256sum | cut -c1-16
}

# ---------------------------------------------------------------------------------------

vm_out_root="$REPO_ROOT/target/vm"
mkdir -p "$vm_out_root" "$VM_CACHE_DIR/initramfs"
# One VM at a time per checkout: they share the work directory and the console log.
exec 9>"$vm_out_root/.lock"
flock -n 9 || die "another scripts/vm/run.sh is running in this checkout"
base="$VM_CACHE_DIR/initramfs/base-$(base_key).cpio.gz"
if [[ ! -s "$base" ]]; then
    log "building the base initramfs"
    find "$VM_CACHE_DIR/initramfs" -name 'base-*.cpio.gz' -delete
    build_base "$base"
fi

# The per-run archive: the command, its environment and the --add files.
work="$vm_out_root/run"
rm -rf "$work"
mkdir -p "$work"
new_stage "$work/stage"
rm -f "$stage"/{bin,sbin,lib,lib64} "$stage/var/run" "$stage/var/lock" # already in the base
printf '%s\n' "$guest_cmd" >"$stage/etc/vm/cmd.sh"
for kv in "${envs[@]+"${envs[@]}"}"; do
    [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got: $kv"
    value="${kv#*=}"
    printf "%s='%s'\n" "${kv%%=*}" "${value//\'/\'\\\'\'}" >>"$stage/etc/vm/env"
done
touch "$stage/etc/vm/env"
for spec in "${adds[@]+"${adds[@]}"}"; do
    host_path="${spec%%:*}"
    guest_path="${spec#*:}"
    [[ "$spec" == *:* ]] || guest_path=""
    [[ -e "$host_path" ]] || die "--add: no such file: $host_path"
    host_path="$(realpath "$host_path")"
    guest_path="${guest_path:-$host_path}"
    [[ "$guest_path" == /* ]] || die "--add: guest path must be absolute: $guest_path"
    if [[ -d "$host_path" ]]; then
        mkdir -p "$stage$guest_path"
        cp -a "$host_path/." "$stage$guest_path/"
    else
        copy_file "$host_path" "$stage$guest_path"
    fi
done
# The base already has the merged-/usr links; the per-run tree must not replace them with
# directories, so anything ldd put under /lib or /lib64 moves to /usr.
for d in lib lib64 bin sbin; do
    if [[ -d "$stage/$d" && ! -L "$stage/$d" ]]; then
        mkdir -p "$stage/usr/$d"
        cp -a "$stage/$d/." "$stage/usr/$d/"
        rm -rf "${stage:?}/$d"
    fi
done
make_cpio "$stage" "$work/extra.cpio"
rm -rf "$stage"
cat "$base" "$work/extra.cpio" >"$work/initrd.img"
rm -f "$work/extra.cpio"

# Extra disks after the results disk (/dev/vda): /dev/vdb, /dev/vdc, ... in order.
disk_args=()
n=0
for spec in "${disks[@]+"${disks[@]}"}"; do
    file="${spec%%:*}"
    serial=""
    [[ "$spec" != *:* ]] || serial="${spec#*:}"
    [[ -f "$file" ]] || die "--disk: no such image file: $file"
    [[ "$serial" =~ ^[A-Za-z0-9_.-]{0,20}$ ]] || die "--disk: serial must be up to 20 of [A-Za-z0-9_.-]: $serial"
    n=$((n + 1))
    disk_args+=(-drive "file=$(realpath "$file"),format=raw,if=none,id=extra$n"
        -device "virtio-blk-pci,drive=extra$n${serial:+,serial=$serial}")
done

disk="$work/results.img"
truncate -s 1G "$disk"
console="$vm_out_root/console.log"
initrd_mb=$(($(stat -c %s "$work/initrd.img") / 1048576))
log "booting (initrd ${initrd_mb} MiB, timeout ${timeout_s}s, console log: ${console#"$REPO_ROOT/"})"

start=$(date +%s)
set +e
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg -cpu max -m "$mem" -smp "$smp" \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -kernel "$VM_KERNEL" -initrd "$work/initrd.img" \
    -append "console=ttyS0 panic=-1 loglevel=3 rdinit=/init" \
    -drive "file=$disk,format=raw,if=none,id=results" -device virtio-blk-pci,drive=results \
    "${disk_args[@]+"${disk_args[@]}"}" \
    </dev/null 2>&1 | tr -d '\r' | tee "$console"
qemu_rc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))

if ((qemu_rc == 124 || qemu_rc == 137)); then
    log "TIMEOUT: the VM did not finish within ${timeout_s}s (killed); see ${console}"
    exit 124
fi

rm -rf "$out_dir"
mkdir -p "$out_dir"
tar -xf "$disk" -C "$out_dir" 2>/dev/null || true
rm -f "$disk"
rc=""
if [[ -s "$out_dir/exit-code" ]]; then
    rc="$(cat "$out_dir/exit-code")"
else
    rc="$(sed -n 's/^VM-EXIT-CODE: \([0-9]*\)$/\1/p' "$console" | tail -n1)"
fi
if [[ ! "$rc" =~ ^[0-9]+$ ]]; then
    log "FAILED: the guest reported no exit code (qemu exit $qemu_rc, ${elapsed}s); kernel panic or harness error? see $console"
    exit 125
fi
log "guest command exited with $rc after ${elapsed}s (results in ${out_dir#"$REPO_ROOT/"})"
exit "$rc"
