# Sourced by perf.sh, timeline.sh and drain.sh, which set tmp and build $tmp/sged.

# start_sged starts a fresh sged on an empty data directory in $tmp, trusting
# loopback as a proxy (so sgeload's -xff-base spreads the per-IP limit), and
# sets pid and addr once it listens. With the argument "keep" it starts on
# the data the last one left.
start_sged() {
	[ "${1:-}" = keep ] || rm -rf "$tmp/data"
	DATA_DIR="$tmp/data" ADDR=127.0.0.1:0 TRUSTED_PROXIES=127.0.0.1/32 \
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
