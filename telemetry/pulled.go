package telemetry

import (
	"strconv"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"
)

// SettlementsByStatus exports sge_settlements{status} from f, called at
// scrape time. A later call replaces f.
func (m *Metrics) SettlementsByStatus(f func() map[string]int) {
	if m != nil {
		m.pulled.settlements.Store(&f)
	}
}

// DeadLetters exports sge_dead_letters from f, called at scrape time.
func (m *Metrics) DeadLetters(f func() int) {
	if m != nil {
		m.pulled.deadLetters.Store(&f)
	}
}

// RegisterPebble exports Pebble health (sge_pebble_*) from f, typically
// db.Metrics, called at scrape time.
func (m *Metrics) RegisterPebble(f func() *pebble.Metrics) {
	if m != nil {
		m.pulled.pebble.Store(&f)
	}
}

// Readiness exports sge_ready from f, typically what /readyz answers,
// called at scrape time: the gauge then follows the store's health too, not
// only start-up and drain.
func (m *Metrics) Readiness(f func() bool) {
	if m != nil {
		m.pulled.ready.Store(&f)
	}
}

// DiskFree exports sge_pebble_disk_free_bytes{dir} from f, typically
// Store.DiskFree, called at scrape time.
func (m *Metrics) DiskFree(f func() map[string]uint64) {
	if m != nil {
		m.pulled.diskFree.Store(&f)
	}
}

// pulledCollector reads values owned by other subsystems at scrape time. It
// is registered once by NewMetrics and the sources are plugged in later, so
// wiring order does not matter and nothing is registered twice. A source not
// yet set exports nothing rather than a misleading zero.
type pulledCollector struct {
	settlements atomic.Pointer[func() map[string]int]
	deadLetters atomic.Pointer[func() int]
	pebble      atomic.Pointer[func() *pebble.Metrics]
	diskFree    atomic.Pointer[func() map[string]uint64]
	ready       atomic.Pointer[func() bool]
}

var (
	settlementsDesc = prometheus.NewDesc("sge_settlements", "Settlements by status.", []string{"status"}, nil)
	deadLettersDesc = prometheus.NewDesc("sge_dead_letters", "Settlements in the dead-letter store.", nil, nil)
	levelFilesDesc  = prometheus.NewDesc("sge_pebble_level_files", "Pebble sstables per LSM level.", []string{"level"}, nil)
	levelBytesDesc  = prometheus.NewDesc("sge_pebble_level_bytes", "Pebble sstable bytes per LSM level.", []string{"level"}, nil)
	readyDesc       = prometheus.NewDesc("sge_ready",
		"1 when the gateway accepts traffic (what /readyz answers), 0 while starting, draining, or while its store is unhealthy.", nil, nil)
	diskFreeDesc = prometheus.NewDesc("sge_pebble_disk_free_bytes",
		"Bytes free to sged on the filesystem of the store's data directory (dir=data) and of its WAL directory when it has its own (dir=wal).",
		[]string{"dir"}, nil)
)

type pebbleStat struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*pebble.Metrics) float64
}

func stat(name, help string, typ prometheus.ValueType, value func(*pebble.Metrics) float64) pebbleStat {
	return pebbleStat{prometheus.NewDesc(name, help, nil, nil), typ, value}
}

var pebbleStats = []pebbleStat{
	stat("sge_pebble_wal_bytes", "Live data in the Pebble WAL.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.WAL.Size) }),
	stat("sge_pebble_wal_physical_bytes", "On-disk size of the Pebble WAL files.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.WAL.PhysicalSize) }),
	stat("sge_pebble_wal_files", "Live Pebble WAL files.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.WAL.Files) }),
	stat("sge_pebble_wal_written_bytes_total", "Bytes written to the Pebble WAL.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.WAL.BytesWritten) }),
	stat("sge_pebble_compactions_total", "Pebble compactions since open.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.Compact.Count) }),
	stat("sge_pebble_compactions_in_progress", "Pebble compactions running now.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.Compact.NumInProgress) }),
	stat("sge_pebble_compaction_debt_bytes", "Estimated bytes Pebble must compact to reach a stable LSM.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.Compact.EstimatedDebt) }),
	stat("sge_pebble_flushes_total", "Pebble memtable flushes since open.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.Flush.Count) }),
	// Flushes and compactions run beside the requests; their time since open
	// tells how long they competed with them.
	stat("sge_pebble_compaction_seconds_total", "Time Pebble spent compacting since open, running compactions included.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return m.Compact.Duration.Seconds() }),
	stat("sge_pebble_flush_seconds_total", "Time Pebble spent flushing memtables since open.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return m.Flush.WriteThroughput.WorkDuration.Seconds() }),
	stat("sge_pebble_read_amplification", "Pebble read amplification (sublevels of L0 plus non-empty levels).", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.ReadAmp()) }),
	stat("sge_pebble_disk_usage_bytes", "Disk used by the Pebble store.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.DiskSpaceUsage()) }),
	stat("sge_pebble_memtable_bytes", "Bytes allocated by Pebble memtables.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.MemTable.Size) }),
	stat("sge_pebble_block_cache_bytes", "Bytes in the Pebble block cache.", prometheus.GaugeValue, func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Size) }),
	stat("sge_pebble_block_cache_hits_total", "Pebble block cache hits.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Hits) }),
	stat("sge_pebble_block_cache_misses_total", "Pebble block cache misses.", prometheus.CounterValue, func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Misses) }),
}

var levelLabels = func() (l [len(pebble.Metrics{}.Levels)]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func (c *pulledCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- settlementsDesc
	ch <- deadLettersDesc
	ch <- levelFilesDesc
	ch <- levelBytesDesc
	ch <- diskFreeDesc
	ch <- readyDesc
	ch <- walFsyncDesc
	ch <- schedLatencyDesc
	for _, s := range pebbleStats {
		ch <- s.desc
	}
}

func (c *pulledCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.settlements.Load(); f != nil {
		for status, n := range (*f)() {
			ch <- prometheus.MustNewConstMetric(settlementsDesc, prometheus.GaugeValue, float64(n), status)
		}
	}
	if f := c.deadLetters.Load(); f != nil {
		ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64((*f)()))
	}
	if m := schedLatencyHistogram(); m != nil {
		ch <- m
	}
	if f := c.ready.Load(); f != nil {
		v := 0.0
		if (*f)() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v)
	}
	if f := c.diskFree.Load(); f != nil {
		for dir, n := range (*f)() {
			ch <- prometheus.MustNewConstMetric(diskFreeDesc, prometheus.GaugeValue, float64(n), dir)
		}
	}
	if f := c.pebble.Load(); f != nil {
		pm := (*f)()
		if pm == nil {
			return
		}
		for _, s := range pebbleStats {
			ch <- prometheus.MustNewConstMetric(s.desc, s.typ, s.value(pm))
		}
		if m := walFsyncHistogram(pm); m != nil {
			ch <- m
		}
		for i := range pm.Levels {
			ch <- prometheus.MustNewConstMetric(levelFilesDesc, prometheus.GaugeValue, float64(pm.Levels[i].NumFiles), levelLabels[i])
			ch <- prometheus.MustNewConstMetric(levelBytesDesc, prometheus.GaugeValue, float64(pm.Levels[i].Size), levelLabels[i])
		}
	}
}
