#!/usr/bin/env bash
# How long sged takes to shut down with many wallet actors alive. For each of
# RUNS runs, a fresh sged takes registrations unpaced from 1000 connections
# for D (each a new wallet, so each leaves an actor alive until it idles out
# or pressure passivation takes it), then gets SIGTERM; the line printed is
# the wallet actors alive at that moment and the seconds from the signal to
# the process's exit (the whole shutdown: settlement calls in flight, every
# actor stopped, Pebble closed).
#
#   bench/shutdown.sh                  # 3 runs, 14s of load each (120 000-150 000 actors here)
#   RUNS=5 D=8s bench/shutdown.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
D="${D:-14s}"

# shellcheck source=bench/sged.sh
. bench/sged.sh curl

header "sgeload -scenario register -c 1000 for $D, then SIGTERM"
printf "%4s %12s %12s\n" "run" "live actors" "shutdown s"
for run in $(seq 1 "$RUNS"); do
	start_sged
	"$tmp/sgeload" -url "http://$addr" -scenario register -c 1000 -xff-base 10.1.0.1 -d "$D" >/dev/null
	live=$(curl -s "http://$addr/metrics" | awk '/^sge_actors_alive\{kind="wallet"\}/ { print $2 }')
	t0=$(date +%s.%N)
	stop_sged
	t1=$(date +%s.%N)
	awk -v run="$run" -v live="$live" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%4d %12d %12.2f\n", run, live, t1 - t0 }'
done
