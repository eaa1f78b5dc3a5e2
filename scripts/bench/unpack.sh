#!/usr/bin/env bash
# Benchmarks berth-unpack against umoci unpack and GNU tar on the same layers.
#
#   scripts/bench/unpack.sh [RUNS]          (default 11 runs; needs root)
#
# For each image (large:latest: the busybox layer plus big gzip layers of host files;
# layers:gzip: six small layers of edge cases) and each place (tmpfs /dev/shm, and the
# root ext4 disk under target/), every run unpacks the image into a fresh directory with:
#   berth        berth-unpack (overlay snapshots, parallel layers, syncfs before commit)
#   berth-nosync berth-unpack --no-sync
#   berth-to     berth-unpack --to DIR (flattened, whiteouts applied)
#   umoci        umoci unpack --image LAYOUT:REF DIR
#   tar          GNU tar -x of each layer blob in turn (tar -xzf / --zstd / -xf)
# The tools alternate within each run; caches are warm for all of them alike. Prints the
# median wall time of each and its ratio to umoci and to tar, and the median CPU time
# (user+sys of the tool and its children, e.g. tar's gzip), which the load of a shared
# machine disturbs less than wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-11}

cargo build --release -q -p berth-unpack -p berth-testkit
bin=$PWD/target/release
command -v umoci >/dev/null || { echo "umoci is not installed (scripts/setup)" >&2; exit 1; }

fixtures=$(mktemp -d /var/tmp/berth-bench-fixtures.XXXXXX)
work_dirs=()
cleanup() {
  rm -rf "$fixtures" "${work_dirs[@]}"
}
trap cleanup EXIT
"$bin/berth-fixture" --out "$fixtures/layout" --large >/dev/null
"$bin/berth-fixture" --out "$fixtures/layout" layers:gzip >/dev/null

now() { date +%s.%N; }
# CPU=user+sys seconds of every child this shell has waited for so far (`times` must run
# in this shell, not in a $(...) subshell; the awk adds ~1 ms to the next reading)
child_cpu() {
  times >"$fixtures/times"
  CPU=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$fixtures/times")
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# layer blobs of REF in LAYOUT, bottom first, as "mediatype path" lines
layers_of() {
  local layout=$1 ref=$2 manifest
  manifest=$(jq -r --arg r "$ref" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$r) | .digest' "$layout/index.json")
  jq -r '.layers[] | "\(.mediaType) \(.digest)"' "$layout/blobs/sha256/${manifest#sha256:}" |
    while read -r mt d; do echo "$mt $layout/blobs/sha256/${d#sha256:}"; done
}

bench() {
  local place=$1 ref=$2
  local work
  work=$(mktemp -d "$place/berth-bench.XXXXXX")
  work_dirs+=("$work")
  mkdir -p "$work/root"
  cp -a "$fixtures/layout" "$work/root/content"
  local layout=$work/root/content
  mapfile -t layers < <(layers_of "$layout" "$ref")
  local tools=(berth berth-nosync berth-to umoci tar)
  declare -A times cpus
  for ((i = 0; i < runs; i++)); do
    for t in "${tools[@]}"; do
      rm -rf "$work/root/snapshots" "$work/out"
      sync -f "$work" 2>/dev/null || true
      local t0 t1 c0 c1
      child_cpu
      c0=$CPU
      t0=$(now)
      case $t in
        berth) "$bin/berth-unpack" --root "$work/root" "$ref" >/dev/null ;;
        berth-nosync) "$bin/berth-unpack" --root "$work/root" --no-sync "$ref" >/dev/null ;;
        berth-to) "$bin/berth-unpack" --root "$work/root" --to "$work/out" "$ref" >/dev/null ;;
        umoci) umoci unpack --image "$layout:$ref" "$work/out" >/dev/null 2>&1 ;;
        tar)
          mkdir "$work/out"
          for l in "${layers[@]}"; do
            mt=${l%% *} blob=${l#* }
            # GNU tar cannot replace a directory by a file (layers:gzip does): it reports
            # that and goes on; the time still counts.
            case $mt in
              *gzip) tar -xzf "$blob" -C "$work/out" 2>/dev/null || true ;;
              *zstd) tar --zstd -xf "$blob" -C "$work/out" 2>/dev/null || true ;;
              *) tar -xf "$blob" -C "$work/out" 2>/dev/null || true ;;
            esac
          done ;;
      esac
      t1=$(now)
      child_cpu
      c1=$CPU
      times[$t]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}') "
      cpus[$t]+="$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.3f", b - a}') "
    done
  done
  rm -rf "$work/root/snapshots" "$work/out"
  local fs
  fs=$(df --output=fstype "$place" | tail -1)
  echo "== $ref on $place ($fs), ${#layers[@]} layers, $runs runs, median seconds (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  local mu mt cu ct
  mu=$(tr ' ' '\n' <<<"${times[umoci]}" | grep . | median)
  mt=$(tr ' ' '\n' <<<"${times[tar]}" | grep . | median)
  cu=$(tr ' ' '\n' <<<"${cpus[umoci]}" | grep . | median)
  ct=$(tr ' ' '\n' <<<"${cpus[tar]}" | grep . | median)
  for t in "${tools[@]}"; do
    local m c
    m=$(tr ' ' '\n' <<<"${times[$t]}" | grep . | median)
    c=$(tr ' ' '\n' <<<"${cpus[$t]}" | grep . | median)
    awk -v t="$t" -v m="$m" -v u="$mu" -v g="$mt" -v c="$c" -v cu="$cu" -v ct="$ct" 'BEGIN {
      printf "  %-13s %8.3f s  x%.2f of umoci  x%.2f of tar   cpu %7.3f s  x%.2f of umoci  x%.2f of tar\n",
        t, m, m / u, m / g, c, c / cu, c / ct}'
  done
}

for place in /dev/shm "$PWD/target"; do
  for ref in large:latest layers:gzip; do
    bench "$place" "$ref"
  done
done
