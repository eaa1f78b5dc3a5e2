#!/usr/bin/env bash
# What an engine's user sees of the runtime's speed (as root): `podman run --rm IMG true` and
# `ctr run --rm IMG ID true` with berth-run and with runc as the runtime, on busybox from a
# throwaway local registry, N alternating rounds (default 20), medians, the ratio, and the
# load average before and after. The engines' own work (podman's storage and conmon,
# containerd's shim) is in every number, so the ratio is closer to 1 than the runtime's alone
# (scripts/bench/run.sh measures that).
#
# Everything is private to a temporary directory (podman's root/runroot/tmpdir and config
# files, containerd's root/state/socket), containers go to the cgroup /berth/bench-eng-<pid>,
# and all of it is removed on exit (see docs/engines.md for the configuration).
#
# Usage: scripts/bench/engines.sh [--no-build] [ROUNDS]
#   --no-build  use target/release/berth-run and target/debug/berth-fixture as they are
set -euo pipefail
cd "$(dirname "$0")/../.."
build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
rounds="${1:-20}"

if [ "$build" = 1 ]; then
  cargo build --release -p berth-run >&2
  cargo build -p berth-testkit --bin berth-fixture >&2
fi
berth="$PWD/target/release/berth-run"
fixture="$PWD/target/debug/berth-fixture"
for tool in podman ctr containerd runc docker-registry skopeo python3 "$berth" "$fixture"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (scripts/setup; cargo build)" >&2; exit 1; }
done

work="$(mktemp -d /tmp/berth-bench-eng.XXXXXX)"
cgroup="/berth/bench-eng-$$"
pids=()
export CONTAINERS_CONF="$work/containers.conf" CONTAINERS_REGISTRIES_CONF="$work/registries.conf" \
       CONTAINERS_STORAGE_CONF="$work/storage.conf"
podman_base=(podman --root "$work/root" --runroot "$work/runroot" --tmpdir "$work/tmp"
             --cgroup-manager cgroupfs --events-backend file)
ctr_base=(ctr --address "$work/containerd.sock")

cleanup() {
  "${podman_base[@]}" rm --all --force --time 0 >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
  # Shims and conmons name our directory on their command lines.
  for d in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF "$work"; then kill -9 "${d#/proc/}" 2>/dev/null || true; fi
  done
  { grep -F " $work" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for d in /sys/fs/cgroup/*"$cgroup" /sys/fs/cgroup"$cgroup"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# busybox in a local registry.
"$fixture" --out "$work/images" busybox:gzip >/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
addr="127.0.0.1:$port"
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
  "$work/registry/storage" "$addr" >"$work/registry/config.yml"
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://$addr/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/images:busybox:gzip" "docker://$addr/busybox:1.36"
image="$addr/busybox:1.36"

# podman.
cat >"$work/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
runtime_supports_json = ["crun", "runc", "berth-run"]
[network]
network_backend = "cni"
network_config_dir = "$work/net"
EOF
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$work/root" "$work/runroot" >"$work/storage.conf"
printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$addr" >"$work/registries.conf"
"${podman_base[@]}" pull --quiet "$image" >/dev/null

# containerd.
cat >"$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd-root"
state = "$work/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.restart", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.native"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "$work/v1-runtime"
EOF
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 400); do "${ctr_base[@]}" version >/dev/null 2>&1 && break; sleep 0.05; done
"${ctr_base[@]}" images pull --plain-http "$image" >/dev/null

python3 - "$rounds" "$work" "$cgroup" "$image" "$berth" "${podman_base[@]}" <<'EOF'
import os, statistics, subprocess, sys, time

rounds, work, cgroup, image, berth = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
podman = sys.argv[6:]
runtimes = {"berth-run": berth, "runc": "/usr/sbin/runc"}
ctr = ["ctr", "--address", f"{work}/containerd.sock"]

def timed(argv):
    t0 = time.perf_counter()
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return t

results = {(e, r): [] for e in ("podman", "ctr") for r in runtimes}
load_before = os.getloadavg()
seq = 0
for n in range(rounds):
    order = list(runtimes) if n % 2 == 0 else list(reversed(runtimes))
    for name in order:
        path = runtimes[name]
        results[("podman", name)].append(timed(podman + [
            "--runtime", path, "run", "--rm", "--network", "none", "--cgroup-parent", cgroup,
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image, "true"]))
        seq += 1
        cid = f"bench-{os.getpid()}-{seq}"
        results[("ctr", name)].append(timed(ctr + [
            "run", "--rm", "--runc-binary", path, "--runc-root", f"{work}/runtime",
            "--cgroup", f"{cgroup}/{cid}", image, cid, "true"]))

load = lambda l: " ".join(f"{x:.2f}" for x in l)
print(f"rounds: {rounds} (alternating order), image: busybox, command: true, {os.cpu_count()} CPUs, "
      f"load average before {load(load_before)}, after {load(os.getloadavg())}")
print(f"{'engine':<8} {'berth-run ms':>13} {'runc ms':>9} {'ratio':>7}")
for engine in ("podman", "ctr"):
    b = statistics.median(results[(engine, "berth-run")])
    r = statistics.median(results[(engine, "runc")])
    print(f"{engine:<8} {b*1000:>13.1f} {r*1000:>9.1f} {b/r:>6.2f}x")
EOF
