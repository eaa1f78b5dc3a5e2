#!/bin/busybox sh
# PID 1 of the cgroup2 lane's guest after switch_root in systemd mode
# (`scripts/test-cgroup2 --systemd`, see docs/cgroup2-lane.md). The host copies it into the
# lane as /run/lane/guest.sh, in place of guest.sh. It mounts what systemd would not (the
# repository's share at its host path, a fresh /tmp and /dev/mqueue), installs the lane's
# units into the overlay's /etc/systemd/system (berth-lane.target, berth-lane.service, and
# drop-ins that start dbus without sysinit.target), masks every generator, and execs Debian's
# systemd, which stays PID 1 and mounts cgroup2 at /sys/fs/cgroup itself. The kernel command
# line (`systemd.unit=berth-lane.target`) picks the lane's target; berth-lane.service runs
# /run/lane/guest-systemd.sh, which runs the command and powers off.
set -u
alias mount='/bin/busybox mount' mkdir='/bin/busybox mkdir' ln='/bin/busybox ln' rm='/bin/busybox rm' \
    cat='/bin/busybox cat' cp='/bin/busybox cp' cut='/bin/busybox cut' sync='/bin/busybox sync'
lane=/run/lane
exec >>$lane/output 2>&1

fail() {
    echo "cgroup2-lane: systemd guest: $*"
    echo 125 >$lane/status
    sync
    /bin/busybox poweroff -f
}

mount -t proc -o nosuid,nodev,noexec proc /proc || fail "mounting /proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail "mounting /sys"
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || fail "mounting /dev"
cut -d' ' -f1 /proc/uptime >$lane/t-pid1
mkdir -p /dev/mqueue
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue || fail "mounting /dev/mqueue"
# A fresh /tmp, as in the default guest (the overlay's would show the host's /tmp).
mount -t tmpfs -o nosuid,nodev tmp /tmp || fail "mounting /tmp"
if [ -s $lane/repo ]; then
    repo=$(cat $lane/repo)
    mkdir -p "$repo" || fail "making $repo"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro,cache=loose repo "$repo" \
        || fail "mounting the repository share at $repo"
fi

# The lane's units. /etc is the overlay's: written here, gone with the guest.
units=/etc/systemd/system
cp -R $lane/systemd/. $units/ || fail "installing the lane's units into $units"
# No generators: each is a dynamically linked program (~0.5 s under emulation) and the lane
# needs none of what they make (fstab mounts, gettys, sysv units). /dev/null masks one.
mkdir -p /etc/systemd/system-generators
for g in /lib/systemd/system-generators/* /usr/lib/systemd/system-generators/*; do
    [ -e "$g" ] && ln -sf /dev/null "/etc/systemd/system-generators/${g##*/}"
done
# The host is a Docker container: its /.dockerenv, seen through the 9p root, would make
# systemd believe it runs in a container (and read its options from its own argv instead of
# the kernel command line). The guest is a VM: whiteout the file in the overlay.
rm -f /.dockerenv /run/.containerenv
# The host's /etc/machine-id is kept; where it has none, systemd writes a transient one into
# the overlay (dbus-daemon needs one).
[ -x /lib/systemd/systemd ] || fail "/lib/systemd/systemd is missing on the host (apt-get install systemd)"
sync
exec /lib/systemd/systemd
