package bench

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/gateway"
)

var memWallets = flag.Int("wallets", 100_000, "distinct wallets BenchmarkWalletMemory touches")

// BenchmarkWalletMemory touches -wallets distinct wallets (each spawns an
// actor that loads its state from Pebble), measures memory while they are
// alive, lets them passivate, and measures again. Run it once:
//
//	go test -run '^$' -bench WalletMemory -benchtime 1x ./bench/ -args -wallets=1000000
//
// Each touch is a claim/record for an unknown claim: a 404 that needs no
// commit, so the run measures actors, not fsyncs.
func BenchmarkWalletMemory(b *testing.B) {
	var cfg gateway.Config
	cfg.Store.Dir = b.TempDir()
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg.Actors.IdleTimeout = 2 * time.Second
	// The run measures memory, not the live-wallet cap: at over 100 000
	// touches a second, two seconds of wallets can exceed the default cap.
	cfg.Actors.MaxLiveWallets = *memWallets
	g, err := gateway.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = g.Shutdown(ctx)
	}()
	n := *memWallets
	base := heapInUse()
	for range b.N {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 4 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					r := actors.NewRequest()
					r.Op = actors.OpClaimRecord
					r.Wallet = append(r.Wallet, wallet(uint64(i))...)
					r.ClaimID = append(r.ClaimID, "01ARZ3NDEKTSV4RRFFQ69G5FAV"...)
					r.TxHash = append(r.TxHash, "0x0000000000000000000000000000000000000000000000000000000000000001"...)
					r.IP = netip.MustParseAddr("192.0.2.1")
					if err := g.System.Do(r); err != nil || r.Status != 404 {
						b.Errorf("touch %d: %v %d", i, err, r.Status)
						return
					}
					actors.Release(r)
				}
			}()
		}
		wg.Wait()
	}
	live := g.System.LiveWallets()
	liveHeap := heapInUse()
	b.ReportMetric(float64(live), "live-actors")
	b.ReportMetric(float64(liveHeap-base)/float64(max(live, 1)), "heap-B/live-wallet")
	b.ReportMetric(float64(rss())/(1<<20), "RSS-MiB-live")

	deadline := time.Now().Add(5 * time.Minute)
	for g.System.LiveWallets() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	debug.FreeOSMemory()
	b.ReportMetric(float64(g.System.LiveWallets()), "live-after")
	b.ReportMetric(float64(heapInUse()-base)/float64(n), "heap-B/idle-wallet")
	b.ReportMetric(float64(rss())/(1<<20), "RSS-MiB-idle")
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// rss reads the process's resident set size from /proc (Linux).
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
