#!/usr/bin/env bash
# Start-up benchmark of berth-run against runc and crun on the same bundle (as root):
#   run      `RUNTIME run ID` of /bin/true in the foreground
#   lifecycle `create` + `start` + `delete --force`
# N alternating rounds (default 60), medians, ratios to crun and runc, the CPU time of `run`
# (user+sys of the runtime and the children it reaped, from wait4: less disturbed by other
# load than wall time), peak RSS (the largest ru_maxrss of the runtime and what it forked),
# and the load average before and after.
#
# berth-run is measured twice: "berth-run" is the release build (scripts/build-static-run: a
# static PIE, as runc's release binaries are static) and "berth-run-dyn" is plain
# `cargo build --release` (dynamically linked, like Debian's runc and crun measured here).
# The ratios of both to crun and runc are printed.
#
# crun refuses hybrid cgroup hosts, so the whole benchmark (every runtime) runs in a private
# mount namespace with a tmpfs over /sys/fs/cgroup/unified: all three see the same v1-only
# layout. Containers go to the cgroup /berth/bench-<pid>, never under the caller's cgroup.
# The state roots (--root) of all runtimes are on one tmpfs mounted in that namespace, as
# their defaults (/run/berth, /run/crun, /run/runc) are on a usual host; on this machine /run
# is on the root ext4, whose journal, under other builds, adds 4-6 ms of waits to every
# runtime's start (docs/run-speed.md). STATE_ON_DISK=1 keeps them in the work directory.
#
# Usage: scripts/bench/run.sh [--no-build] [ROUNDS]
#   --no-build  use the binaries as they are built (do not run cargo build first)
. "$(dirname "$0")/lib.sh"
rounds="${1:-60}"

triple="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$bench_no_build" = 0 ]; then
  bench_build
  scripts/build-static-run >/dev/null
fi
berth="$PWD/target/$triple/release/berth-run"
berth_dyn="$PWD/target/release/berth-run"
for b in "$berth" "$berth_dyn"; do
  [ -x "$b" ] || { echo "bench: $b is not built (run without --no-build)" >&2; exit 1; }
done
bench_need runc crun busybox python3 unshare /usr/bin/time

work="$(mktemp -d /tmp/berth-bench.XXXXXX)"
cleanup() { rm -rf "$work"; bench_rmdir_cgroups "bench-$$"; }
trap cleanup EXIT

bundle="$work/bundle"
bench_bundle "$bundle" "/berth/bench-$$" '["/bin/true"]'

unshare --mount --propagation private -- python3 - "$rounds" "$work" "$bundle" "$berth" "$berth_dyn" <<'EOF'
import os, statistics, subprocess, sys, time

rounds, work, bundle, berth, berth_dyn = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
# crun refuses hybrid hosts: hide the v2 tree (this namespace only).
subprocess.run(["mount", "-t", "tmpfs", "none", "/sys/fs/cgroup/unified"], check=True)
state = f"{work}/state"
os.mkdir(state)
if os.environ.get("STATE_ON_DISK") != "1":
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711", "none", state], check=True)
runtimes = {
    "berth-run": [berth, "--root", f"{state}/berth"],
    "berth-run-dyn": [berth_dyn, "--root", f"{state}/berth-dyn"],
    "crun": ["crun", "--root", f"{state}/crun"],
    "runc": ["runc", "--root", f"{state}/runc"],
}
null = os.open(os.devnull, os.O_RDWR)

def timed(argv):
    """Runs argv; returns (wall seconds, CPU seconds of it and its reaped children, exit status)."""
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
    _, status, ru = os.wait4(pid, 0)
    return time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, os.waitstatus_to_exitcode(status)

def peak_rss(argv):
    """Peak RSS (KiB) of argv and the children it waited for, from GNU time's wait4. A
    process spawned straight from Python would report Python's own RSS (the exec records
    the old mm's high-water mark), so GNU time (small) sits in between."""
    out = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: {argv} failed: {out.stderr.strip()}")
    return int(out.stderr.strip().splitlines()[-1].split()[1])

def must(name, what, res):
    if res[2] != 0:
        sys.exit(f"bench: {name} {what} failed with status {res[2]} (run it by hand to see why)")
    return res

results = {n: {"run": [], "cpu": [], "lifecycle": [], "rss": []} for n in runtimes}
load_before = os.getloadavg()
seq = 0
for r in range(rounds):
    order = list(runtimes) if r % 2 == 0 else list(reversed(runtimes))
    for name in order:
        base = runtimes[name]
        seq += 1
        cid = f"bench-{os.getpid()}-{seq}"
        t, cpu, code = must(name, "run", timed(base + ["run", "--bundle", bundle, cid]))
        results[name]["run"].append(t)
        results[name]["cpu"].append(cpu)
        seq += 1
        cid = f"bench-{os.getpid()}-{seq}"
        t1, _, _ = must(name, "create", timed(base + ["create", "--bundle", bundle, cid]))
        t2, _, _ = must(name, "start", timed(base + ["start", cid]))
        t3, _, _ = must(name, "delete", timed(base + ["delete", "--force", cid]))
        results[name]["lifecycle"].append(t1 + t2 + t3)

# Peak RSS: a separate pass, so that GNU time's own fork is not in the timings above.
for r in range(5):
    for name, base in runtimes.items():
        seq += 1
        results[name]["rss"].append(peak_rss(base + ["run", "--bundle", bundle, f"bench-{os.getpid()}-{seq}"]))

med = {n: {k: statistics.median(v) for k, v in d.items() if v} for n, d in results.items()}
load = lambda l: " ".join(f"{x:.2f}" for x in l)
print(f"rounds: {rounds} (alternating order), bundle: busybox /bin/true, kernel {os.uname().release}, "
      f"{os.cpu_count()} CPUs, load average before {load(load_before)}, after {load(os.getloadavg())}, "
      f"state roots on {'disk' if os.environ.get('STATE_ON_DISK') == '1' else 'tmpfs'}")
print(f"{'runtime':<14} {'run ms':>9} {'run CPU ms':>11} {'create+start+delete ms':>24} {'peak RSS KiB':>13}")
for n in runtimes:
    m = med[n]
    print(f"{n:<14} {m['run']*1000:>9.2f} {m['cpu']*1000:>11.2f} {m['lifecycle']*1000:>24.2f} {max(results[n]['rss']):>13}")
for mine in ("berth-run", "berth-run-dyn"):
    b = med[mine]
    for other in ("crun", "runc"):
        o = med[other]
        print(f"{mine} / {other}: run {b['run']/o['run']:.2f}x, run CPU {b['cpu']/o['cpu']:.2f}x, "
              f"create+start+delete {b['lifecycle']/o['lifecycle']:.2f}x, "
              f"peak RSS {max(results[mine]['rss'])/max(results[other]['rss']):.2f}x")
EOF
