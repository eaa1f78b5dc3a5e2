#!/usr/bin/env bash
# Checkpoint/restore benchmark of berth-run against runc on the same bundle (as root): a
# busybox counter started detached, then `RUNTIME checkpoint` (the dump; the container is
# gone after it) and `RUNTIME restore -d`, then `delete --force`. N alternating rounds
# (default 5), the medians of wall time and of CPU time (user+sys of the runtime and
# everything it waited for, criu included: from /usr/bin/time), the ratio berth/runc, and
# the load average before and after.
#
# Debian 12's criu cannot work on kernels 6.13+ (`criu check` fails on the vDSO): there the
# script runs itself in the QEMU guest of scripts/test-cgroup2 (Debian's 6.1 kernel), where
# both runtimes run under emulation: compare the ratio, not the absolute times.
#
# Usage: scripts/bench/checkpoint.sh [--no-build] [ROUNDS]
#   --no-build  use target/release/berth-run as it is (do not run cargo build first)
. "$(dirname "$0")/lib.sh"
rounds="${1:-5}"

if [ -z "${BERTH_BENCH_IN_GUEST:-}" ]; then
  bench_build
  if ! criu check >/dev/null 2>&1; then
    echo "bench: criu cannot work on this kernel ($(uname -r)); running in the QEMU guest" >&2
    echo "bench: host load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    exec scripts/test-cgroup2 --timeout 590 -- env BERTH_BENCH_IN_GUEST=1 \
      scripts/bench/checkpoint.sh --no-build "$rounds"
  fi
fi
berth="$PWD/target/release/berth-run"
[ -x "$berth" ] || { echo "bench: $berth is not built" >&2; exit 1; }
bench_need runc criu busybox python3 /usr/bin/time

work="$(mktemp -d /tmp/berth-ckpt-bench.XXXXXX)"
cleanup() {
  for i in $(seq 1 "$rounds"); do
    "$berth" --root "$work/berth" delete --force "b$i" >/dev/null 2>&1 || true
    runc --root "$work/runc" delete --force "r$i" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for c in sh sleep; do ln -s busybox "$bundle/rootfs/bin/$c"; done
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"]
c["linux"].pop("cgroupsPath", None)
json.dump(c, open(path, "w"))
EOF

# One timed command: "wall_s cpu_s" appended to FILE.
timed() {
  local file=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$work/t" "$@" </dev/null >/dev/null 2>"$work/err" \
    || { echo "bench: $* failed: $(cat "$work/err")" >&2; exit 1; }
  awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$work/t" >>"$file"
}

round() {
  local name=$1 bin=$2 root=$3 id=$4
  # stdio on pipes (runc hands only pipes over to criu; a host /dev/null cannot be dumped)
  "$bin" --root "$root" run -d --bundle "$bundle" "$id" < <(sleep 300) > >(cat >/dev/null) 2>&1
  sleep 0.5
  timed "$work/$name.checkpoint" "$bin" --root "$root" checkpoint --image-path "$work/img-$id" "$id"
  timed "$work/$name.restore" "$bin" --root "$root" restore -d --image-path "$work/img-$id" --bundle "$bundle" "$id"
  "$bin" --root "$root" delete --force "$id" >/dev/null 2>&1
  rm -rf "$work/img-$id"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$rounds"); do
  round berth "$berth" "$work/berth" "b$i"
  round runc runc "$work/runc" "r$i"
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f", m }'; }
printf '%-11s %12s %12s %8s %12s %12s %8s\n' "$rounds rounds" "berth wall" "runc wall" "ratio" "berth cpu" "runc cpu" "ratio"
for op in checkpoint restore; do
  bw=$(cut -d' ' -f1 "$work/berth.$op" | median); rw=$(cut -d' ' -f1 "$work/runc.$op" | median)
  bc=$(cut -d' ' -f2 "$work/berth.$op" | median); rc=$(cut -d' ' -f2 "$work/runc.$op" | median)
  awk -v op="$op" -v bw="$bw" -v rw="$rw" -v bc="$bc" -v rc="$rc" 'BEGIN {
    printf "%-11s %11ss %11ss %8.2f %11ss %11ss %8.2f\n", op, bw, rw, bw / rw, bc, rc, (rc > 0 ? bc / rc : 0) }'
done
