#!/bin/busybox sh
# sandkit initramfs /init: load the virtio drivers, mount the root disk and the workspace
# share, bring up the one network route (to the proxy), then hand PID 1 to the agent.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
arg() { for w in $($B cat /proc/cmdline); do case "$w" in "$1="*) echo "${w#*=}";; esac; done; }
fail() { echo "sandkit-init: $*" >/dev/console; $B sleep 1; $B poweroff -f; }

# Modules in dependency order (listed in /modules.order by the image builder).
for m in $($B cat /modules.order); do $B insmod "/modules/$m.ko" 2>/dev/null; done

i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1)); [ $i -gt 500 ] && fail "no root disk (/dev/vda)"; $B usleep 10000
done
$B mkdir -p /newroot
$B mount -t ext4 -o rw,noatime /dev/vda /newroot || fail "cannot mount the root disk"
for d in run tmp; do $B mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/$d; done
$B mkdir -p /newroot/run/sandkit/share

# The workspace: virtiofs tag "share", mounted at a fixed path and bound at the host's path.
# Warm-pool members (sk.pool=1, restored from a golden snapshot) have no share at boot: the
# host hotplugs one into each clone, the agent mounts it, and adoption binds it.
ws=$(arg sk.ws)
if [ -n "$ws" ]; then
  $B mount -t virtiofs share /newroot/run/sandkit/share || fail "cannot mount the workspace share"
  $B mkdir -p "/newroot$ws"
  $B mount --bind /newroot/run/sandkit/share "/newroot$ws"
fi

# Network: one interface, one route; the proxy is the only thing at the other end.
if [ -d /sys/class/net/eth0 ]; then
  $B ip link set lo up
  $B ip addr add 10.0.2.15/24 dev eth0
  $B ip link set eth0 up
  $B ip route add default via 10.0.2.2
  # Published ports reach guest services bound to 127.0.0.1 (supervisor/ports.py).
  echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
fi

name=$(arg sk.hostname)
if [ -n "$name" ]; then
  $B hostname "$name"
  echo "$name" > /newroot/etc/hostname
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost\n' "$name" > /newroot/etc/hosts
fi

$B mount --move /dev /newroot/dev
$B mount --move /proc /newroot/proc
$B mount --move /sys /newroot/sys
$B mkdir -p /newroot/dev/pts /newroot/dev/shm
$B mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts
$B ln -sf pts/ptmx /newroot/dev/ptmx
$B mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/dev/shm
# The agent's package is in /usr/lib/sandkit/sandkit/guest/ (vm/imagebuild.py copies it).
# -I keeps PYTHONPATH and the current folder off sys.path, so the folder is appended here
# (after the standard library's, which the agent's own imports search first).
exec $B switch_root /newroot /usr/bin/python3 -IS -c \
  'import sys; sys.path.append("/usr/lib/sandkit"); from sandkit.guest.agent import main; sys.exit(main())'
