#!/usr/bin/env bash
# Trellis counters against etcd 3.4, side by side in one run, on loopback
# (issue 7's performance point; docs/benchmarks.md, "trellis-counter:
# compare-and-decrement against etcd").
#
# 1. Installs etcd 3.4 from Debian (`etcd-server`, `etcd-client`) if `etcd`
#    is not on the PATH (needs root or sudo, and apt).
# 2. Starts three etcd members on 127.0.0.1 in a temporary directory
#    (distinct data directories and ports, one `--initial-cluster`, the
#    default fsync of the WAL), and waits until all three report healthy.
# 3. Builds and runs the `counter_vs_etcd` report binary, which starts three
#    Trellis counter voters in its own process and measures both systems.
# 4. Stops etcd and removes the directory on exit (trap), also on Ctrl-C
#    or failure.
#
# Not part of CI, and not run by `cargo test`.
#
# Usage (from anywhere in the repository):
#   benches/etcd/run.sh
#
# Environment:
#   CARGO_TARGET_DIR        where to build (default /tmp/target-bench)
#   COUNTER_VS_ETCD_BIN     run this binary instead of building one
#   ETCD_BASE_PORT          clients listen on BASE+1..3, peers on BASE+11..13
#                           (default 23790)
#   TRELLIS_BENCH_SECONDS   seconds per phase (default 10; 12 phases)
#   TRELLIS_BENCH_COUNTERS  counters in the spread workload (default 1000)
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
base="${ETCD_BASE_PORT:-23790}"
target="${CARGO_TARGET_DIR:-/tmp/target-bench}"

if ! command -v etcd >/dev/null; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    echo "etcd is not installed; installing etcd-server and etcd-client from Debian" >&2
    $sudo apt-get update
    if ! apt-cache policy etcd-server | grep -q 'Candidate: [0-9]'; then
        echo "The etcd-server package is not available from this machine's apt sources;" >&2
        echo "the comparison needs etcd 3.4 (Debian bookworm's etcd-server)." >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y etcd-server etcd-client
fi
version="$(etcd --version | sed -n 's/^etcd Version: //p')"
case "$version" in
    3.4.*) ;;
    *) echo "warning: etcd $version found; the comparison was designed for 3.4" >&2 ;;
esac

work="$(mktemp -d /tmp/trellis-etcd.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cluster=""
clients=""
for i in 1 2 3; do
    cluster+="${cluster:+,}e$i=http://127.0.0.1:$((base + 10 + i))"
    clients+="${clients:+,}http://127.0.0.1:$((base + i))"
done
for i in 1 2 3; do
    client="http://127.0.0.1:$((base + i))"
    peer="http://127.0.0.1:$((base + 10 + i))"
    etcd --name "e$i" --data-dir "$work/e$i" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --initial-cluster-token trellis-bench \
        --logger zap --log-level warn --log-outputs "$work/e$i.log" &
    pids+=($!)
done

echo "etcd $version: 3 members in $work, clients at $clients" >&2
deadline=$((SECONDS + 60))
for url in ${clients//,/ }; do
    until curl -sf "$url/health" | grep -q '"health":"true"'; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "etcd at $url did not become healthy within 60 s; its log:" >&2
            tail -n 20 "$work"/e*.log >&2 || true
            exit 1
        fi
        sleep 0.2
    done
done
echo "etcd is healthy" >&2

bin="${COUNTER_VS_ETCD_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -p trellis-benches --bin counter_vs_etcd)
    bin="$target/release/counter_vs_etcd"
fi
echo "machine: nproc $(nproc); $(free -h | awk '/^Mem:/ {print $2 " memory"}'); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
TRELLIS_BENCH_ETCD="$clients" "$bin"
