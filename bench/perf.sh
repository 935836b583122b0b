#!/usr/bin/env bash
# The load runs behind the README's performance table: sged built fresh on
# a fresh data directory, driven over loopback by sgeload, each scenario
# beside the bare fasthttp baseline that sgeload measures in the same run.
#
#   bench/perf.sh            # 20s per scenario
#   D=60s bench/perf.sh      # longer runs
set -euo pipefail
cd "$(dirname "$0")/.."
D="${D:-20s}"
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) CPUs · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · $(go version | cut -d' ' -f3)"
go build -o "$tmp/sged" ./cmd/sged
go build -o "$tmp/sgeload" ./cmd/sgeload

DATA_DIR="$tmp/data" ADDR=127.0.0.1:0 TRUSTED_PROXIES=127.0.0.1/32 LOG_LEVEL=warn \
	"$tmp/sged" --log-level info 2>"$tmp/sged.log" &
pid=$!
addr=""
for _ in $(seq 1 300); do
	addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$tmp/sged.log" | head -n1)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/sged.log"; exit 1; }
load() { echo; echo "\$ sgeload $*"; "$tmp/sgeload" -url "http://$addr" -d "$D" "$@"; }

# Latency at fixed rates first, on the fresh server: about half of each
# path's maximum requests/s on a 2-core machine (see the runs below).
load -scenario register -c 100 -xff-base 10.3.0.1 -rate "${RATE_MISS:-2500}"
load -scenario hit -c 100 -xff-base 10.4.0.1 -rate "${RATE_HIT:-7500}"
load -scenario limited -c 100 -rate "${RATE_LIMITED:-4000}"
load -scenario register -c 1000 -xff-base 10.1.0.1 -baseline
load -scenario hit -c 1000 -xff-base 10.2.0.1 -baseline
load -scenario limited -c 100 -baseline # 127.0.0.1's bucket, empty since the paced run
load -scenario claim -c 500
echo
echo "sged RSS after the runs: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
