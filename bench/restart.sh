#!/usr/bin/env bash
# How long sged takes to come back after a crash under load. For each of
# RUNS runs, a fresh sged takes registrations at RATE from 100 connections;
# after D it gets SIGKILL while the load still runs, so its newest commits
# exist only in the WAL, and it starts again on the same data. The line
# printed: the registrations answered before the kill (sged's /metrics, read
# just before it), the seconds from the restart's exec to its "listening" log
# line (the poll is every 0.1 s; Pebble replays the WAL's unflushed commits
# before it opens), and the settlements pending or running that the
# restarted sged found to finish.
#
#   bench/restart.sh                  # 3 runs, 4000/s for 30s
#   RUNS=5 RATE=2000 D=20s bench/restart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
RATE="${RATE:-4000}"
D="${D:-30s}"

# shellcheck source=bench/sged.sh
. bench/sged.sh curl

header "sgeload -scenario register -c 100 -rate $RATE, SIGKILL after $D, restart"
printf "%4s %12s %11s %10s\n" "run" "registered" "restart s" "unsettled"
for run in $(seq 1 "$RUNS"); do
	start_sged
	# The load outlives the kill; it is stopped once sged is gone, and its
	# connection errors then are expected.
	"$tmp/sgeload" -url "http://$addr" -scenario register -c 100 -xff-base 10.9.0.1 -rate "$RATE" -d 1h >/dev/null 2>&1 &
	load=$!
	sleep "$D"
	registered=$(curl -s "http://$addr/metrics" | awk 'index($0, "http_request_duration_ms_count{method=\"POST\"") == 1 && /status="201"/ { n += $2 } END { print n + 0 }')
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
	kill "$load" 2>/dev/null || true
	wait "$load" 2>/dev/null || true
	t0=$(date +%s.%N)
	start_sged keep
	t1=$(date +%s.%N)
	unsettled=$(curl -s "http://$addr/metrics" | settlement_counts | cut -d' ' -f2)
	stop_sged
	awk -v run="$run" -v reg="$registered" -v t0="$t0" -v t1="$t1" -v u="$unsettled" \
		'BEGIN { printf "%4d %12d %11.2f %10d\n", run, reg, t1 - t0, u }'
done
