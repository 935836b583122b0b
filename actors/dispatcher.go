package actors

import "time"

// workerDispatcher runs actor mailboxes on goroutines that outlive one run.
//
// protoactor-go's default dispatcher starts a new goroutine for every run of
// a mailbox, and a wallet actor's run goes deep into Pebble: each new
// goroutine grew its stack from 8 KiB by copying, 8% of the CPU in
// BenchmarkMiss. Here a run goes to a worker that is waiting for one, or to
// a new worker when none is; a worker then waits up to idle for the next
// run before it exits, so a burst leaves nothing behind for long. After
// stop closes, workers exit as soon as they are idle.
type workerDispatcher struct {
	runs       chan func()
	idle       time.Duration
	stop       <-chan struct{}
	throughput int
}

// dispatcherIdle is how long a worker waits for the next run. Bursts of
// requests are far denser than that; a quiet service keeps no workers.
const dispatcherIdle = 5 * time.Second

func newWorkerDispatcher(idle time.Duration, stop <-chan struct{}) *workerDispatcher {
	// 300 messages per run before yielding, as protoactor-go's default.
	return &workerDispatcher{runs: make(chan func()), idle: idle, stop: stop, throughput: 300}
}

func (d *workerDispatcher) Schedule(run func()) {
	select {
	case d.runs <- run: // an idle worker took it
	default:
		go d.work(run)
	}
}

func (d *workerDispatcher) Throughput() int { return d.throughput }

func (d *workerDispatcher) work(run func()) {
	timer := time.NewTimer(d.idle)
	defer timer.Stop()
	for {
		run() // protoactor-go's mailbox recovers the actors' panics itself
		timer.Reset(d.idle)
		select {
		case run = <-d.runs:
		case <-timer.C:
			return
		case <-d.stop:
			return
		}
	}
}
