package bench

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// relayBacklog is the number of committed events a Relay case drains.
	relayBacklog = 20_000
	// relayEventsPerTx is the number of events each backlog transaction commits.
	relayEventsPerTx = 100
	// relayTimeout bounds one drain.
	relayTimeout = 2 * time.Minute
)

// relayImpls returns the implementations BenchmarkRelay compares.
func relayImpls(tb testing.TB, pool *pgxpool.Pool) []eventImpl {
	tb.Helper()
	return []eventImpl{
		wmImpl(tb, pool, "watermill-default", "bench_relay_default", 0, 0),
		wmImpl(tb, pool, "watermill-batch1000-poll10ms", "bench_relay_fast", 1000, 10*time.Millisecond),
		unoRelay(tb, pool),
	}
}

// BenchmarkRelay drains a backlog of 20,000 committed events (200 transactions of 100
// events, spread over 200 keys, over 4 hot keys, or all under one hot key) to a handler on an in-process
// GoChannel and reports events/s, from the relay's start to the handler seeing the last
// distinct event. It also reports, for the same wiring, the events that reached the
// handler after a later event of their key (ooo-events), duplicates (dup-events) and
// events never delivered (lost-events), and the bytes and objects the process
// allocated per relayed event (B/event, allocs/event).
//
// Run it with -benchtime 1x: each iteration refills the backlog (not timed).
func BenchmarkRelay(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	impls := relayImpls(b, pool)
	for _, keys := range []int{emitKeys, 4, 1} {
		for _, impl := range impls {
			b.Run("backlog="+strconv.Itoa(relayBacklog)+"/keys="+strconv.Itoa(keys)+"/impl="+impl.name, func(b *testing.B) {
				benchmarkDrain(b, ctx, impl, keys)
			})
		}
	}
}

// benchmarkDrain is one BenchmarkRelay case: impl drains relayBacklog events over keys.
func benchmarkDrain(b *testing.B, ctx context.Context, impl eventImpl, keys int) {
	var ooo, dup, lost int
	var allocBytes, allocs uint64
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		impl.reset(b)
		fillBacklog(b, ctx, impl, relayBacklog, keys)
		tr := newTracker(relayBacklog)
		runtime.ReadMemStats(&ms)
		bytes0, allocs0 := ms.TotalAlloc, ms.Mallocs
		b.StartTimer()

		stop := impl.start(b, tr)
		select {
		case <-tr.done:
		case <-time.After(relayTimeout):
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		allocBytes += ms.TotalAlloc - bytes0
		allocs += ms.Mallocs - allocs0
		stop()
		o, d, bad := tr.counts()
		if bad != 0 {
			b.Errorf("%d messages without key/seq metadata", bad)
		}
		ooo += o
		dup += d
		lost += relayBacklog - tr.received()
	}
	b.ReportMetric(float64(relayBacklog*b.N)/b.Elapsed().Seconds(), "events/s")
	// The whole process's allocations while relaying (relay, transport, router and
	// handler), per event.
	b.ReportMetric(float64(allocBytes)/float64(relayBacklog*b.N), "B/event")
	b.ReportMetric(float64(allocs)/float64(relayBacklog*b.N), "allocs/event")
	b.ReportMetric(float64(ooo)/float64(b.N), "ooo-events")
	b.ReportMetric(float64(dup)/float64(b.N), "dup-events")
	b.ReportMetric(float64(lost)/float64(b.N), "lost-events")
	b.ReportMetric(0, "ns/op")
	if lost != 0 {
		b.Errorf("%d of %d events not delivered within %v", lost, relayBacklog*b.N, relayTimeout)
	}
}

// fillBacklog commits n events (a multiple of relayEventsPerTx) through impl,
// relayEventsPerTx per transaction, event i with key i%keys and a sequence number per
// key that follows commit order.
func fillBacklog(tb testing.TB, ctx context.Context, impl eventImpl, n, keys int) {
	tb.Helper()
	evs := make([]eventRef, relayEventsPerTx)
	for g := 0; g < n; g += relayEventsPerTx {
		for j := range evs {
			i := g + j
			evs[j] = eventRef{key: keyName(i % keys), seq: int64(i / keys)}
		}
		if err := impl.commit(ctx, evs); err != nil {
			tb.Fatalf("fill the backlog: %v", err)
		}
	}
}
