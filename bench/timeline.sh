#!/usr/bin/env bash
# A timeline of one paced register run: where the half-load tail comes from.
# It starts a fresh sged (as perf.sh does), drives it with sgeload at RATE
# from C connections for D, and every STEP reads sged's /metrics. Each line
# is one step: the requests sged answered and their mean latency as sged
# timed them, the synced commits and their mean wait for the WAL sync, the
# WAL fsyncs and their mean, how long Pebble flushed and compacted in that
# step, the settlement attempts that ended and the Go GC cycles, sged's CPU
# per answer in the step (process_cpu_seconds_total, 10 ms resolution, so
# use a STEP of a few seconds for it) and the wallet actors alive at the
# step's end. Stretches where sged falls behind show as steps with a high
# mean latency; the other columns show what ran beside them. A flush's time
# counts in the step where it ends (Pebble adds it up then); a compaction's
# counts while it runs. With WARMUP set, the same load runs that long first,
# unrecorded, so the timeline shows a server that has a store and a
# settlement backlog behind it. The last line is sged's CPU per request over
# the recorded run (its /metrics pages included), the figure to compare two
# builds or settings by at one rate.
#
#   bench/timeline.sh                          # 5000/s from 100 connections, 20s
#   RATE=4000 C=1000 D=30s bench/timeline.sh
#   WARMUP=15s bench/timeline.sh
#   RATE=4000 D=240s STEP=5 bench/timeline.sh  # a steady state: actors passivate
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${RATE:-5000}"
C="${C:-100}"
D="${D:-20s}"
STEP="${STEP:-0.5}"

# shellcheck source=bench/sged.sh
. bench/sged.sh curl
start_sged

header "sgeload -scenario register -c $C -rate $RATE -d $D${WARMUP:+ after $WARMUP of the same}"
if [ -n "${WARMUP:-}" ]; then
	"$tmp/sgeload" -url "http://$addr" -scenario register -c "$C" -xff-base 10.8.0.1 -rate "$RATE" -d "$WARMUP" >/dev/null
fi
before=$(cpu_total)
"$tmp/sgeload" -url "http://$addr" -scenario register -c "$C" -xff-base 10.9.0.1 -rate "$RATE" -d "$D" >"$tmp/report" &
load=$!

# sample prints one line of cumulative counters: seconds since start, then
# POST requests and their latency sum (ms), commits and their WAL sync wait
# (s), fsyncs and their sum (s), flush and compaction seconds, settlement
# attempts, Go GC cycles, sged's CPU seconds and its live wallet actors.
start=$(date +%s.%N)
sample() {
	curl -s "http://$addr/metrics" | awk -v now="$(date +%s.%N)" -v start="$start" '
		index($0, "http_request_duration_ms_count{method=\"POST\"") == 1 { rn += $2 }
		index($0, "http_request_duration_ms_sum{method=\"POST\"") == 1 { rs += $2 }
		/^sge_pebble_commit_duration_seconds_count / { cn = $2 }
		index($0, "sge_pebble_commit_wait_seconds_total{cause=\"wal_sync\"}") == 1 { cw = $2 }
		/^sge_pebble_wal_fsync_seconds_count / { fn = $2 }
		/^sge_pebble_wal_fsync_seconds_sum / { fs = $2 }
		/^sge_pebble_flush_seconds_total / { fl = $2 }
		/^sge_pebble_compaction_seconds_total / { co = $2 }
		/^sge_settlement_attempts_total\{/ { sa += $2 }
		/^go_gc_duration_seconds_count / { gc = $2 }
		/^process_cpu_seconds_total / { cpu = $2 }
		index($0, "sge_actors_alive{kind=\"wallet\"}") == 1 { wa = $2 }
		END { printf "%.2f %d %f %d %f %d %f %f %f %d %d %f %d\n", now - start, rn, rs, cn, cw, fn, fs, fl, co, sa, gc, cpu, wa }'
}
while kill -0 "$load" 2>/dev/null; do
	sample
	sleep "$STEP"
done >"$tmp/samples"
wait "$load" || true
after=$(cpu_total)

awk 'BEGIN { printf "%7s %8s %9s %8s %10s %7s %9s %7s %9s %8s %4s %9s %8s\n", "t s", "answers", "mean ms", "commits", "sync ms", "fsyncs", "fsync ms", "flush s", "compact s", "settled", "GCs", "CPU µs/a", "wallets" }
	NR > 1 {
		dn = $2 - p2; dc = $4 - p4; df = $6 - p6
		printf "%7.1f %8d %9.1f %8d %10.2f %7d %9.2f %7.2f %9.2f %8d %4d %9.0f %8d\n", $1, dn, dn ? ($3 - p3) / dn : 0,
			dc, dc ? 1000 * ($5 - p5) / dc : 0, df, df ? 1000 * ($7 - p7) / df : 0, $8 - p8, $9 - p9, $10 - p10, $11 - p11,
			dn ? 1e6 * ($12 - p12) / dn : 0, $13 }
	{ p2 = $2; p3 = $3; p4 = $4; p5 = $5; p6 = $6; p7 = $7; p8 = $8; p9 = $9; p10 = $10; p11 = $11; p12 = $12 }' "$tmp/samples"
echo
cat "$tmp/report"
echo "$before $after $(awk '$1 == "requests" { print $2 }' "$tmp/report")" |
	awk '$3 { printf "sged CPU during the recorded run: %.2f s, %.0f µs per request\n", $2 - $1, 1e6 * ($2 - $1) / $3 }'
