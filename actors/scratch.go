package actors

import "sync"

// scratchBufs lends buffers for keys and records on their way into a batch:
// Batch.Set copies what it is given, so a buffer is free again once Set
// returns. Most wallet actors are a new wallet's and handle one request in
// their lifetime, so buffers of their own would be grown from nothing each
// time (a dozen allocations per registration).
var scratchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxScratch is the largest buffer worth keeping; a huge record (a long
// lastError) is left to the garbage collector.
const maxScratch = 64 << 10

func getScratch() *[]byte { return scratchBufs.Get().(*[]byte) }

// putScratch returns p, keeping buf (p's buffer, possibly grown) in it.
func putScratch(p *[]byte, buf []byte) {
	if cap(buf) <= maxScratch {
		*p = buf[:0]
	}
	scratchBufs.Put(p)
}
