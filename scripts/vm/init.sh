#!/bin/sh
# /init of the test guest (busybox sh). run.sh copies this file into the initramfs.
#
# It mounts the pseudo file systems, loads the modules listed in /etc/vm/modules (in that
# order), runs /etc/vm/cmd.sh as root with the variables of /etc/vm/env, writes /out as a
# tar onto /dev/vda (the results disk) and powers off. The exit code of the command goes to
# /out/exit-code and to the console as `VM-EXIT-CODE: N`.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t devtmpfs devtmpfs /dev
# Without a /dev/console node in the archive the kernel starts us with no stdio.
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Files added under /tmp or /run (say fixtures of a checkout that lives under /tmp) would be
# hidden by the tmpfs mounts: set them aside and copy them in afterwards.
for d in tmp run; do
    if [ -n "$(ls -A "/$d" 2>/dev/null)" ]; then
        mkdir -p /.carry && mv "/$d" "/.carry/$d" && mkdir "/$d"
    fi
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
for d in tmp run; do
    [ -d "/.carry/$d" ] && cp -a "/.carry/$d/." "/$d/" && rm -rf "/.carry/$d"
done
mkdir -p /dev/shm /dev/pts /run/lock/lvm /run/lvm /run/mdadm /out
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# devtmpfs has no /dev/fd family.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

echo "vm: kernel $(uname -r), $(nproc) cpu(s), $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB"
# Modules: dependencies first, as run.sh ordered them. A module that fails to load is
# logged, not fatal: the tests that need it fail with their own message.
while read -r ko; do
    [ -n "$ko" ] || continue
    err="$(insmod "/lib/modules/vm/$ko" 2>&1)" || echo "vm: insmod $ko failed: $err"
done </etc/vm/modules
cat /etc/vm/modules.notes 2>/dev/null
[ -e /dev/mapper/control ] || echo "vm: warning: no /dev/mapper/control"

# Wait briefly for the results disk node.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || echo "vm: warning: no /dev/vda; results come back only on the console"

set -a
# shellcheck disable=SC1091 # written by run.sh
. /etc/vm/env
set +a
export VM_OUT=/out
echo "vm: running command"
cd /
sh /etc/vm/cmd.sh
rc=$?
cd /
echo "$rc" >/out/exit-code
if [ -b /dev/vda ]; then
    tar -cf /dev/vda -C /out . || echo "vm: writing results to /dev/vda failed"
fi
sync
echo "VM-EXIT-CODE: $rc"
poweroff -f
