# Sourced by perf.sh, timeline.sh, drain.sh, sustain.sh, shutdown.sh and
# restart.sh from the repository root: it builds sged and sgeload from the
# working tree into a fresh $tmp, which goes on exit together with any sged
# or load still running, and defines start_sged, stop_sged, header, cpu,
# cpu_total and settlement_counts.
#
# With WAL_DIR set (a directory on another device, say), each new store
# keeps its WAL in a fresh directory under it, which goes on exit too: a
# store refuses a WAL directory that holds another store's WAL.
#
# A script that reads sged's /metrics sources it as ". bench/sged.sh curl",
# so that a missing curl stops it before anything is built.
if [ "${1:-}" = curl ] && ! command -v curl >/dev/null; then
	echo "$(basename "$0") needs curl" >&2
	exit 2
fi
tmp=$(mktemp -d)
pid=""
wal_root="${WAL_DIR:-}"
wal=""
trap 'stop_sged; wait; rm -rf "$tmp" ${wal:+"$wal"}' EXIT
go build -o "$tmp/sged" ./cmd/sged
go build -o "$tmp/sgeload" ./cmd/sgeload

# start_sged starts a fresh sged on an empty data directory in $tmp, trusting
# loopback as a proxy (so sgeload's -xff-base spreads the per-IP limit), and
# sets pid and addr once it listens. With the argument "keep" it starts on
# the data the last one left.
start_sged() {
	if [ "${1:-}" != keep ]; then
		rm -rf "$tmp/data" ${wal:+"$wal"}
		[ -z "$wal_root" ] || wal=$(mktemp -d "$wal_root/sged-bench.XXXXXX")
	fi
	DATA_DIR="$tmp/data" WAL_DIR="$wal" ADDR=127.0.0.1:0 TRUSTED_PROXIES=127.0.0.1/32 \
		"$tmp/sged" --log-level info 2>"$tmp/sged.log" &
	pid=$!
	addr=""
	for _ in $(seq 1 300); do
		addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$tmp/sged.log" | head -n1)
		[ -n "$addr" ] && return 0
		sleep 0.1
	done
	cat "$tmp/sged.log"
	exit 1
}

# stop_sged stops the sged start_sged started, if it runs.
stop_sged() {
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}

# header prints a run's first line: when, on what, at which commit, then
# each detail given that is not empty, and WAL_DIR when it is set.
header() {
	local line part
	line="# $(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) CPUs · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · $(go version | cut -d' ' -f3) · commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	for part in "$@" "${WAL_DIR:+WAL_DIR=$WAL_DIR}"; do
		[ -z "$part" ] || line+=" · $part"
	done
	echo "$line"
}

# cpu prints the CPU seconds the running sged has used so far: user, then
# system.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f %.2f", $14 / hz, $15 / hz }' /proc/"$pid"/stat; }
# cpu_total is the same, user and system together.
cpu_total() { cpu | awk '{ print $1 + $2 }'; }

# settlement_counts reads a /metrics page on stdin and prints the settlement
# attempts that have ended, then the settlements pending or running.
settlement_counts() {
	awk '/^sge_settlement_attempts_total\{/ { n += $2 } /^sge_settlements\{status="(pending|running)"\}/ { p += $2 }
		END { print n + 0, p + 0 }'
}
