#!/usr/bin/env bash
# Benchmarks berth-netns add+del against the floor: the same CNI plugins exec'd by a plain
# shell script with the same stdin.
#
#   scripts/bench/netns.sh [RUNS]          (default 31 runs; needs root)
#
# The network list is bridge + host-local + portmap (one port mapping on 127.0.0.1), with no
# IP masquerade and no gateway or route out of the machine. Each run, alternating:
#   berth   berth-netns add NAME --port …; berth-netns del NAME   (namespace made in process,
#           VERSION asked of each plugin, result cached and read back for DEL)
#   floor   ip netns add NAME; bridge ADD; portmap ADD (prevResult, runtimeConfig);
#           portmap DEL; bridge DEL (prevResult); ip netns del NAME
# Prints the median wall time of each and the ratio berth / floor.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-31}
plugins=/usr/lib/cni

[ "$(id -u)" = 0 ] || { echo "netns.sh needs root" >&2; exit 1; }
for p in bridge host-local portmap; do
  [ -x "$plugins/$p" ] || { echo "$plugins/$p is missing (scripts/setup)" >&2; exit 1; }
done
cargo build --release -q -p berth-netns
berth=$PWD/target/release/berth-netns

work=$(mktemp -d /tmp/berth-bench-netns.XXXXXX)
id=$$
bridge="bbr$((id % 1000000))"
net="bbench$id"
subnet="10.$((200 + id % 50)).$(((id / 50) % 256))"
# portmap makes shared top-level chains on first use; remove them again if this run made them.
had_portmap_chains=$(iptables -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 && echo yes || echo no)
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^bb${id}-" || true); do
    "$berth" del "$ns" --conf-dir "$work/conf" --cache-dir "$work/cache" --bin-dir "$plugins" >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  if [ "$had_portmap_chains" = no ]; then
    iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null || true
    iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null || true
    iptables -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ 2>/dev/null || true
    for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
      iptables -t nat -F "$c" 2>/dev/null && iptables -t nat -X "$c" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/conf" "$work/cache" "$work/ipam"

bridge_conf='{"type":"bridge","bridge":"'$bridge'","isGateway":false,"ipMasq":false,"ipam":{"type":"host-local","subnet":"'$subnet'.0/24","dataDir":"'$work/ipam'"}}'
portmap_conf='{"type":"portmap","capabilities":{"portMappings":true}}'
echo '{"cniVersion":"1.0.0","name":"'$net'","plugins":['"$bridge_conf,$portmap_conf"']}' >"$work/conf/10-bench.conflist"

# What berth-netns sends each plugin: the plugin's object with name and cniVersion, then
# prevResult, then (for portmap) runtimeConfig. The floor sends the same bytes.
head_of() { printf '%s' "${1%\}}"',"cniVersion":"1.0.0","name":"'$net'"'; }

floor() {
  local ns=$1 port=$2 r pm_stdin
  ip netns add "$ns"
  export CNI_CONTAINERID=$ns CNI_NETNS=/run/netns/$ns CNI_IFNAME=eth0 CNI_ARGS= CNI_PATH=$plugins
  r=$(CNI_COMMAND=ADD "$plugins/bridge" <<<"$(head_of "$bridge_conf")}")
  pm_stdin="$(head_of "$portmap_conf"),\"prevResult\":$r,\"runtimeConfig\":{\"portMappings\":[{\"containerPort\":80,\"hostIP\":\"127.0.0.1\",\"hostPort\":$port,\"protocol\":\"tcp\"}]}}"
  r=$(CNI_COMMAND=ADD "$plugins/portmap" <<<"$pm_stdin")
  CNI_COMMAND=DEL "$plugins/portmap" <<<"$pm_stdin" >/dev/null
  CNI_COMMAND=DEL "$plugins/bridge" <<<"$(head_of "$bridge_conf"),\"prevResult\":$r}" >/dev/null
  ip netns del "$ns"
}

berth_run() {
  local ns=$1 port=$2
  "$berth" add "$ns" --conf-dir "$work/conf" --cache-dir "$work/cache" --bin-dir "$plugins" \
    --port "127.0.0.1:$port:80/tcp" >/dev/null
  "$berth" del "$ns" --conf-dir "$work/conf" --cache-dir "$work/cache" --bin-dir "$plugins"
}

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# One warm-up of each (first iptables chains, page cache), not counted.
floor "bb${id}-w1" 40000
berth_run "bb${id}-w2" 40001

floor_times=() berth_times=()
for ((i = 0; i < runs; i++)); do
  port=$((40002 + i))
  t0=$(now); floor "bb${id}-f$i" "$port"; t1=$(now)
  floor_times+=($(((t1 - t0) / 1000)))
  t0=$(now); berth_run "bb${id}-b$i" "$port"; t1=$(now)
  berth_times+=($(((t1 - t0) / 1000)))
done

# Nothing may be left: host-local's addresses, berth's cache, the veths.
leftover=$(find "$work/ipam/$net" -name '10.*' | wc -l)
[ "$leftover" = 0 ] || { echo "host-local still holds $leftover addresses" >&2; exit 1; }
[ -z "$(ls -A "$work/cache/results" 2>/dev/null)" ] || { echo "cache entries left" >&2; exit 1; }

f=$(printf '%s\n' "${floor_times[@]}" | median)
b=$(printf '%s\n' "${berth_times[@]}" | median)
awk -v f="$f" -v b="$b" -v n="$runs" 'BEGIN {
  printf "runs %d (add+del of bridge+host-local+portmap, median wall time)\n", n
  printf "  floor (shell execs the plugins)  %8.1f ms\n", f / 1000
  printf "  berth-netns add + del            %8.1f ms\n", b / 1000
  printf "  ratio berth/floor                %8.3f\n", b / f
}'
