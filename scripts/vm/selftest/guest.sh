#!/bin/sh
# Runs inside the guest (scripts/vm/selftest.sh copies it there): checks that every tool
# the privileged tests rely on works on the guest kernel. Stops at the first failure.
set -eu

step() { echo "selftest: $*"; }

step "device-mapper"
test -c /dev/mapper/control
grep -q device-mapper /proc/misc
dmsetup version
dmsetup targets | sort

step "loop devices over sparse files in /tmp"
truncate -s 64M /tmp/a.img /tmp/b.img /tmp/c.img
la="$(losetup --find --show /tmp/a.img)"
lb="$(losetup --find --show /tmp/b.img)"
lc="$(losetup --find --show /tmp/c.img)"
echo "loops: $la $lb $lc"

step "dmsetup create (linear) and the node it leaves"
dmsetup create vmself-lin --table "0 2048 linear $la 0"
dmsetup table vmself-lin
ls -l /dev/mapper/ /dev/dm-* || true
dmsetup remove vmself-lin

step "dmsetup create without udev: is /dev/mapper/<name> there?"
dmsetup create vmself-zero --table "0 1024 zero"
ls -l /dev/mapper
dmsetup remove vmself-zero

step "lvm: pvcreate/vgcreate/lvcreate, snapshot, thin pool"
pvcreate -q "$lb"
vgcreate -q vmselfvg "$lb"
lvcreate -q -y -L 8M -n lv0 vmselfvg
lvcreate -q -y -s -L 4M -n snap0 vmselfvg/lv0
lvcreate -q -y -L 16M -T vmselfvg/pool0
lvcreate -q -y -V 32M -T vmselfvg/pool0 -n thin0
lvs -a vmselfvg
dmsetup table | sort
dmsetup status | sort
ls -l /dev/mapper /dev/vmselfvg
dd if=/dev/zero of=/dev/vmselfvg/lv0 bs=64k count=16 2>/dev/null
sha256sum /dev/vmselfvg/snap0 >/dev/null
vgcfgbackup -f "$VM_OUT/vmselfvg.vg" vmselfvg
vgchange -q -a n vmselfvg
vgremove -q -f vmselfvg
pvremove -q "$lb"

step "mdadm RAID1 over two loops"
mdadm --create /dev/md0 --run --quiet --metadata=1.2 --level=1 --raid-devices=2 "$la" "$lc"
cat /proc/mdstat

step "mkfs.ext4, mount, write, checksum"
mkfs.ext4 -q -F /dev/md0
mkdir -p /mnt/md
mount -t ext4 /dev/md0 /mnt/md
echo hello >/mnt/md/file
sha256sum /mnt/md/file
umount /mnt/md
e2fsck -f -n /dev/md0
mdadm --stop /dev/md0

losetup -d "$la" "$lb" "$lc" 2>/dev/null || { losetup -d "$la"; losetup -d "$lb"; losetup -d "$lc"; }
echo "selftest: all checks passed" | tee "$VM_OUT/selftest.txt"
