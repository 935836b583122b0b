package actors

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every scheduled run happens, also when runs outnumber idle workers and
// schedule each other; once stop closes, no worker stays behind.
func TestWorkerDispatcherRunsEverythingAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	stop := make(chan struct{})
	d := newWorkerDispatcher(time.Hour, stop) // only stop ends the workers
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(2 * n)
	var mu sync.Mutex
	ran := make(map[int]int)
	for i := range n {
		d.Schedule(func() {
			mu.Lock()
			ran[i]++
			mu.Unlock()
			d.Schedule(func() { // a run that schedules another, as actors do
				mu.Lock()
				ran[n+i]++
				mu.Unlock()
				wg.Done()
			})
			wg.Done()
		})
	}
	wg.Wait()
	for i := range 2 * n {
		if ran[i] != 1 {
			t.Fatalf("run %d ran %d times", i, ran[i])
		}
	}
	close(stop)
}
