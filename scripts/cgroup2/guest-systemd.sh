#!/bin/busybox sh
# What berth-lane.service runs in the cgroup2 lane's systemd guest (`scripts/test-cgroup2
# --systemd`, see docs/cgroup2-lane.md): the lane's command (/run/lane/command), with its
# output, exit status and timings written into /run/lane (a share of the host's temp dir),
# then an immediate power-off. systemd is PID 1 and manages the cgroup tree: unlike the
# default guest.sh, this enables no controller by hand.
set -u
alias cut='/bin/busybox cut' awk='/bin/busybox awk' sync='/bin/busybox sync' \
    cat='/bin/busybox cat' hostname='/bin/busybox hostname'
lane=/run/lane
exec >>$lane/output 2>&1

hostname cgroup2-lane
export HOME=/root TERM=dumb CGROUP2_LANE=1 CGROUP2_LANE_SYSTEMD=1
t0=$(cat $lane/t-pid1 2>/dev/null || echo '?')
t1=$(cut -d' ' -f1 /proc/uptime)
/bin/bash $lane/command </dev/null
status=$?
t2=$(cut -d' ' -f1 /proc/uptime)
printf 'pid1 %ss, ready %ss, command %ss\n' "$t0" "$t1" "$(awk "BEGIN { print $t2 - $t1 }")" >$lane/timings
echo "$status" >$lane/status
sync
# reboot(2) at once: nothing in the guest is worth stopping, and the overlay is thrown away.
/bin/busybox poweroff -f
