#!/usr/bin/env bash
# A settlement backlog drained after a restart: the settlement path's own
# cost, without HTTP traffic beside it. sged takes registrations for D at
# RATE while its backend calls are held to one at a time
# (SETTLEMENT_CONCURRENCY=1), so nearly every settlement stays pending; then
# it restarts on the same data with an instant mock backend
# (MOCK_SETTLEMENT_LATENCY=0) and runs them all: the sweep, an actor each,
# the attempt's two synced commits. Printed: the settlements run, the wall
# time until none is pending or running, and sged's CPU from listening to
# then, per settlement.
#
#   bench/drain.sh                  # 5000/s for 12s: about 54 000 settlements
#   RATE=2000 D=20s bench/drain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${RATE:-5000}"
D="${D:-12s}"

# shellcheck source=bench/sged.sh
. bench/sged.sh curl
# attempts is the settlement attempts ended, unfinished those pending or
# running.
attempts() { curl -s "http://$addr/metrics" | settlement_counts | cut -d' ' -f1; }
unfinished() { curl -s "http://$addr/metrics" | settlement_counts | cut -d' ' -f2; }

header "registrations at $RATE/s for $D"
SETTLEMENT_CONCURRENCY=1 start_sged
"$tmp/sgeload" -url "http://$addr" -scenario register -c 100 -xff-base 10.9.0.1 -rate "$RATE" -d "$D" >"$tmp/report"
stop_sged
MOCK_SETTLEMENT_LATENCY=0 start_sged keep
# The drain begins as soon as sged listens, so the first readings pair the
# CPU with the settlements already run at that moment.
t0=$(date +%s.%N) c0=$(cpu_total) a0=$(attempts)
while [ "$(unfinished)" != 0 ]; do sleep 0.1; done
t1=$(date +%s.%N) c1=$(cpu_total) a1=$(attempts)
echo "settlements run after the restart: $a1 ($a0 of them before the first reading)"
echo "$((a1 - a0)) $t0 $t1 $c0 $c1" | awk '$1 > 0 { printf "then %d in %.1f s (%.0f/s); sged CPU %.2f s, %.0f us per settlement\n", $1, $3 - $2, $1 / ($3 - $2), $5 - $4, ($5 - $4) / $1 * 1e6 }'
