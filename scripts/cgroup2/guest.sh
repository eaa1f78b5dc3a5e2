#!/bin/busybox sh
# PID 1 of the cgroup2 lane's guest after switch_root (see docs/cgroup2-lane.md): mounts the
# API filesystems and the only cgroup hierarchy (v2) like systemd does, enables every
# controller in the root's subtree_control, runs /run/lane/command, writes its output and
# exit status into /run/lane (a share of the host's temp dir) and powers off.
# Everything here is busybox (static, read once over 9p) rather than the host's dynamically
# linked tools: under emulation each of those costs a few hundred ms of library loading.
set -u
alias mount='/bin/busybox mount' mkdir='/bin/busybox mkdir' ln='/bin/busybox ln' \
    cut='/bin/busybox cut' cat='/bin/busybox cat' hostname='/bin/busybox hostname' \
    ip='/bin/busybox ip' sync='/bin/busybox sync' awk='/bin/busybox awk'
lane=/run/lane
exec >>$lane/output 2>&1

fail() {
    echo "cgroup2-lane: guest: $*"
    echo 125 >$lane/status
    sync
    /bin/busybox poweroff -f
}

mount -t proc -o nosuid,nodev,noexec proc /proc || fail "mounting /proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail "mounting /sys"
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || fail "mounting /dev"
t0=$(cut -d' ' -f1 /proc/uptime)
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts || fail "mounting /dev/pts"
mount -t tmpfs -o nosuid,nodev shm /dev/shm || fail "mounting /dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue || fail "mounting /dev/mqueue"
mount -t tmpfs -o nosuid,nodev tmp /tmp || fail "mounting /tmp"
# The repository comes on its own read-only share, mounted at its host path, so that it is
# there wherever the clone lives (under /tmp or /run, which the guest covers with tmpfs).
if [ -s /run/lane/repo ]; then
    repo=$(cat /run/lane/repo)
    mkdir -p "$repo" || fail "making $repo"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro,cache=loose repo "$repo" \
        || fail "mounting the repository share at $repo"
fi
# systemd's options on a pure v2 host
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup \
    || fail "mounting cgroup2 on /sys/fs/cgroup"
mount -t bpf -o nosuid,nodev,noexec,mode=0700 bpf /sys/fs/bpf 2>/dev/null || true
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
ln -sf pts/ptmx /dev/ptmx 2>/dev/null || true

# Every controller the kernel offers, for the children of the root.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || fail "enabling the $c controller"
done

hostname cgroup2-lane
ip link set lo up 2>/dev/null || true

export HOME=/root TERM=dumb CGROUP2_LANE=1
t1=$(cut -d' ' -f1 /proc/uptime)
# In the background so that this shell, PID 1, reaps the orphans the command leaves.
/bin/bash $lane/command </dev/null &
wait $!
status=$?
t2=$(cut -d' ' -f1 /proc/uptime)
printf 'init %ss, ready %ss, command %ss\n' "$t0" "$t1" "$(awk "BEGIN { print $t2 - $t1 }")" >$lane/timings
echo "$status" >$lane/status
sync
/bin/busybox poweroff -f
