#!/usr/bin/env bash
# The registration rate sged sustains with its settlements keeping up. A
# register maximum (perf.sh) leaves most settlements for later; here, for
# each rate in RATES, a fresh sged takes registrations at that rate for D
# with an instant mock backend (MOCK_SETTLEMENT_LATENCY=0, so the backend
# is never the limit) and prints, at the end of the load: the rate answered
# and its p99, the settlements created (the MISS answers), those run so far,
# and those still pending or running. A rate is sustained while the last
# number stays near zero: the settlements of the last moment or so. The
# rate "max" runs unpaced from 1000 connections, as perf.sh's maximum does.
#
#   bench/sustain.sh                          # 4000 to 9000/s, 20s each
#   RATES="3000 6000 max" D=30s bench/sustain.sh
#   MOCK_SETTLEMENT_LATENCY=50ms bench/sustain.sh   # the default mock
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${RATES:-4000 5000 6000 7000 8000 9000}"
D="${D:-20s}"
export MOCK_SETTLEMENT_LATENCY="${MOCK_SETTLEMENT_LATENCY:-0}"

# shellcheck source=bench/sged.sh
. bench/sged.sh curl

header "sgeload -scenario register -c 100 (max: 1000) for $D per rate" "MOCK_SETTLEMENT_LATENCY=$MOCK_SETTLEMENT_LATENCY"
printf "%8s %9s %9s %9s %9s %11s\n" "rate" "answered" "p99 ms" "created" "run" "unfinished"
for rate in $RATES; do
	pace=(-c 100 -rate "$rate")
	[ "$rate" = max ] && pace=(-c 1000)
	start_sged
	"$tmp/sgeload" -url "http://$addr" -scenario register "${pace[@]}" -xff-base 10.6.0.1 -d "$D" >"$tmp/report"
	counts=$(curl -s "http://$addr/metrics" | settlement_counts)
	stop_sged
	awk -v rate="$rate" -v counts="$counts" '
		$1 == "requests/s" { rps = $2 }
		$1 == "p99" { p99 = $3 }
		$1 == "X-Idempotency" && $2 == "MISS" { created = $3 }
		END { split(counts, c, " "); printf "%8s %9d %9.1f %9d %9d %11d\n", rate, rps, p99, created, c[1], c[2] }' "$tmp/report"
done
