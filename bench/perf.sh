#!/usr/bin/env bash
# The load runs behind the README's performance table. Every run gets its
# own sged, built fresh and started on an empty data directory, so no run
# pays for the one before (a register run leaves tens of thousands of
# settlements to execute). sgeload drives it over loopback, each maximum run
# beside the bare fasthttp baseline that sgeload starts as a child process in
# the same run; then the latency run paces the same scenario at half of the
# maximum it just measured.
#
#   bench/perf.sh                     # 20s per run
#   D=60s bench/perf.sh               # longer runs
#   SCENARIOS=register bench/perf.sh  # some of register hit limited claim
#   WARMUP=15s bench/perf.sh          # each sged first takes WARMUP of the
#                                     # same load, unrecorded: a store and a
#                                     # settlement backlog behind it
#
# With WARMUP the bare baseline runs on its own, before sged starts: run
# after the warm-up (as -baseline would), it shared the cores with a sged
# still working off its settlements and compactions, came out lower and
# flattered the ratio.
#
# sged takes its settings from the environment as usual, so
# WAL_MIN_SYNC_INTERVAL=0 bench/perf.sh measures without the sync interval,
# and WAL_DIR=/mnt/other-disk bench/perf.sh with the WAL on another device
# (each sged, and the durable baseline with -wal-dir, in a fresh directory
# under it).
set -euo pipefail
cd "$(dirname "$0")/.."
D="${D:-20s}"
SCENARIOS="${SCENARIOS:-register hit limited claim}"

# shellcheck source=bench/sged.sh
. bench/sged.sh
header "${WAL_MIN_SYNC_INTERVAL:+WAL_MIN_SYNC_INTERVAL=$WAL_MIN_SYNC_INTERVAL}" "${WARMUP:+WARMUP=$WARMUP}"

# faults prints sged's minor page faults so far: each costs CPU on first
# touch of a page, and on a VM that is not little (BenchmarkPageFault).
faults() { awk '{ print $10 }' /proc/"$pid"/stat; }

# sged_figures prints sged's own view from its /metrics (needs curl): three
# latency histograms (its synced commits, the WAL fsyncs inside them, and
# how long runnable goroutines waited for a CPU; bounds are histogram
# buckets, so "<="), the requests as it timed them, what the run left to
# settle, and Pebble's stalls, commit waits, flushes and compactions.
sged_figures() {
	command -v curl >/dev/null || return 0
	curl -s "http://$addr/metrics" >"$tmp/metrics"
	[ -z "${WARMUP:-}" ] || echo "(sged's own figures below count the warm-up too)"
	for h in "sge_pebble_commit_duration_seconds synced commits" \
		"sge_pebble_wal_fsync_seconds WAL fsyncs" \
		"sge_go_sched_latency_seconds waits for a CPU"; do
		awk -v name="${h%% *}" -v what="${h#* }" '
			index($0, name "_bucket{") == 1 {
				match($0, /le="[^"]+"/); n++; le[n] = substr($0, RSTART + 4, RLENGTH - 5); cum[n] = $2 }
			index($0, name "_count ") == 1 { total = $2 }
			END {
				if (!total) exit
				printf "sged %s: %d, latency", what, total
				split("50 90 99", q, " ")
				for (i = 1; i <= 3; i++) for (j = 1; j <= n; j++) if (cum[j] >= q[i] / 100 * total) {
					printf " p%s <= %g ms", q[i], le[j] * 1000; break }
				print ""
			}' "$tmp/metrics"
	done
	# The server's own view of the requests' latency, all POST routes together
	# (milliseconds, from handler start to answer).
	awk '
		index($0, "http_request_duration_ms_bucket{method=\"POST\"") == 1 {
			match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
			if (!(le in cum)) order[++n] = le
			cum[le] += $2 }
		index($0, "http_request_duration_ms_count{method=\"POST\"") == 1 { total += $2 }
		END {
			if (!total) exit
			printf "sged POST requests, as sged timed them: %d, latency", total
			split("50 90 99", q, " ")
			for (i = 1; i <= 3; i++) for (j = 1; j <= n; j++) if (cum[order[j]] >= q[i] / 100 * total) {
				printf " p%s <= %s ms", q[i], order[j]; break }
			print ""
		}' "$tmp/metrics"
	# What the run left to settle: a maximum runs far more registrations than
	# settlements (bench/sustain.sh; README, Sustained).
	settlement_counts <"$tmp/metrics" |
		awk '$1 + $2 { printf "sged settlements: %d attempts ended, %d pending or running at the end\n", $1, $2 }'
	awk '/^sge_pebble_write_stall_seconds_count/ { n = $2 } /^sge_pebble_write_stall_seconds_sum/ { s = $2 }
		END { if (n != "") printf "sged Pebble write stalls: %d, %.3f s in all\n", n, s }' "$tmp/metrics"
	# Where the synced commits' time went inside Pebble (the rest is applying
	# them to the memtable and waiting for a CPU).
	awk '/^sge_pebble_commit_duration_seconds_sum / { t = $2 }
		index($0, "sge_pebble_commit_wait_seconds_total{") == 1 { match($0, /cause="[^"]+"/); w[substr($0, RSTART + 7, RLENGTH - 8)] = $2 }
		END { if (t != "") printf "sged commits: %.2f s in all, waiting for the WAL sync %.2f s, a WAL rotation %.2f s, a write stall %.2f s, the pipeline %.2f s\n",
			t, w["wal_sync"], w["wal_rotation"], w["write_stall"], w["pipeline"] }' "$tmp/metrics"
	# Flushes and compactions share the two cores with the requests while
	# they run (each sged is fresh, so these totals are the run's, and its
	# warm-up's when WARMUP is set).
	awk '/^sge_pebble_flushes_total / { f = $2 } /^sge_pebble_flush_seconds_total / { fs = $2 }
		/^sge_pebble_compactions_total / { c = $2 } /^sge_pebble_compaction_seconds_total / { cs = $2 }
		END { if (f != "") printf "sged Pebble flushes: %d, %.2f s in all; compactions: %d, %.2f s in all\n", f, fs, c, cs }' "$tmp/metrics"
}

# load runs sgeload against a fresh sged (after WARMUP of the same load, when
# set), prints its report, sged's CPU and RSS and sged_figures, and leaves
# the report in $tmp/last.
load() {
	local a args=() base="" paced=""
	for a in "$@"; do
		if [ -n "${WARMUP:-}" ] && [ "$a" = -baseline ]; then base=1; else args+=("$a"); fi
		[ "$a" != -rate ] || paced=1
	done
	echo
	if [ -n "$base" ]; then
		# The same traffic against the bare server (-scenario baseline always
		# sends registrations, as -baseline does), while no sged runs.
		echo "\$ sgeload ${args[*]} -scenario baseline   # before sged starts"
		"$tmp/sgeload" -d "$D" "${args[@]}" -scenario baseline | tee "$tmp/base"
	fi
	start_sged
	if [ -n "${WARMUP:-}" ]; then
		echo "\$ sgeload ${args[*]} -d $WARMUP   # warm-up, not reported"
		"$tmp/sgeload" -url "http://$addr" "${args[@]}" -d "$WARMUP" >/dev/null
	fi
	echo "\$ sgeload ${args[*]}"
	local before flt
	before=$(cpu) flt=$(faults)
	"$tmp/sgeload" -url "http://$addr" -d "$D" "${args[@]}" | tee "$tmp/last"
	# Paced, both ran at the pace: only their latencies compare.
	if [ -n "$base" ] && [ -z "$paced" ]; then
		ratio "$tmp/last" "$tmp/base" "sged / the bare baseline before it"
	fi
	echo "sged CPU s during the run: $(echo "$before $(cpu)" | awk '{ printf "%.2f (user %.2f, system %.2f)", $3 + $4 - $1 - $2, $3 - $1, $4 - $2 }'), minor page faults: $(($(faults) - flt)), RSS at the end: $(awk '/VmRSS/{print $2, $3}' /proc/"$pid"/status)"
	sged_figures
	stop_sged
}

# durable runs the durable baseline (no sged): the bare server plus one synced
# commit of a registration's seven keys per request through sged's store, the
# most a durable MISS could reach here (-baseline puts the bare server beside
# it), and at the register half-load rate the least tail such a MISS could have.
# Under WAL_DIR its WAL goes there too, as sged's does.
durable() {
	[ -z "$wal_root" ] || set -- "$@" -wal-dir "$wal_root"
	echo
	echo "\$ sgeload $*"
	"$tmp/sgeload" -d "$D" "$@" | tee "$tmp/durable"
}

# rps prints the requests/s of each report given, one per line (the last
# column of a report is the scenario's own).
rps() { awk '$1 == "requests/s" && $2 ~ /^[0-9.]+$/ { print $NF }' "$@"; }

# ratio prints the requests/s of one report over another's, after a label.
ratio() { rps "$1" "$2" | awk -v what="$3" 'NR == 1 { s = $1 } NR == 2 && $1 > 0 { printf "%s: %.2f\n", what, s / $1 }'; }

# of_ceiling prints sged's requests/s in the last load run over the last
# durable baseline's.
of_ceiling() { ratio "$tmp/last" "$tmp/durable" "sged / durable baseline"; }

# half prints half of the last run's requests/s.
half() { rps "$tmp/last" | awk '{ print int($1 / 2) }'; }

# Each scenario at its maximum beside the baseline, then paced at half of it,
# again beside the baseline at the same rate: the latency this machine and
# client show for a server that does nothing. -xff-base spreads the register
# traffic over many client IPs (sged trusts loopback as a proxy here), so the
# per-IP limit does not end the run early; limited runs from one IP on purpose.
# Registrations also run at a light 1000/s, where a WAL sync interval
# (WAL_MIN_SYNC_INTERVAL) costs latency instead of saving it.
for s in $SCENARIOS; do
	case $s in
	register)
		load -scenario register -c 1000 -xff-base 10.1.0.1 -baseline
		durable -scenario durable -c 1000 -replay 0 -baseline
		of_ceiling
		rate=$(half)
		load -scenario register -c 100 -xff-base 10.3.0.1 -baseline -rate "$rate"
		durable -scenario durable -c 100 -replay 0 -rate "$rate"
		# The same rate from 1000 connections: when sged falls behind, the
		# requests wait inside it rather than for one of the client's 100.
		load -scenario register -c 1000 -xff-base 10.7.0.1 -baseline -rate "$rate"
		load -scenario register -c 100 -xff-base 10.5.0.1 -baseline -rate 1000
		;;
	hit)
		load -scenario hit -c 1000 -xff-base 10.2.0.1 -baseline
		load -scenario hit -c 100 -xff-base 10.4.0.1 -baseline -rate "$(half)"
		;;
	limited)
		load -scenario limited -c 100 -baseline
		load -scenario limited -c 100 -baseline -rate "$(half)"
		;;
	claim) load -scenario claim -c 500 ;;
	*) echo "perf.sh: unknown scenario $s" >&2; exit 2 ;;
	esac
done
