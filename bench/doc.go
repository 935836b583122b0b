// Package bench holds the gateway's benchmarks: the whole request path
// in-process (fasthttp in-memory listener → wallet actor → Pebble) for a
// MISS, a HIT and a 429, each beside a bare fasthttp handler measured in the
// same run, and benchmarks of the components on that path.
//
//	go test -run '^$' -bench . -benchmem ./bench/
package bench
