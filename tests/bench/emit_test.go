package bench

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// emitKeys is the number of distinct keys the Emit and Relay cases spread events over.
const emitKeys = 200

// emitImpl is one way to commit a one-INSERT transaction with events.
type emitImpl struct {
	name string
	// reset empties the domain table and the outbox.
	reset func(tb testing.TB)
	// commit commits one transaction: the INSERT and evs.
	commit func(ctx context.Context, evs []eventRef) error
	// outboxRows returns the number of events stored and not yet relayed.
	outboxRows func(tb testing.TB) int
}

// emitImpls returns the implementations BenchmarkEmit compares.
func emitImpls(tb testing.TB, pool *pgxpool.Pool) []emitImpl {
	tb.Helper()
	o := newWMOutbox(tb, pool, "bench_emit", 0, 0)
	reset := func(tb testing.TB) {
		tb.Helper()
		o.truncate(tb)
		execOrFatal(tb, pool, "TRUNCATE "+txTable)
	}
	rows := func(tb testing.TB) int { tb.Helper(); return countRows(tb, pool, o.schema.MessagesTable(o.fwdTopic)) }
	return []emitImpl{
		{
			name:       "watermill-1publish",
			reset:      reset,
			commit:     func(ctx context.Context, evs []eventRef) error { return o.commit(ctx, evs, true) },
			outboxRows: rows,
		},
		{
			name:       "watermill-10publish",
			reset:      reset,
			commit:     func(ctx context.Context, evs []eventRef) error { return o.commit(ctx, evs, false) },
			outboxRows: rows,
		},
		unoEmit(tb, pool, true),
		unoEmit(tb, pool, false),
		unoEmitOneKey(tb, pool),
	}
}

// BenchmarkEmit measures a one-INSERT transaction without events (events=0) and with 10
// events (events=10), for Watermill's outbox (watermill-sql publisher in the transaction,
// envelope for components/forwarder; 10 messages in one Publish, or 10 Publish calls)
// and for uno (a uow.Manager.Do that emits 10 events with UnitOfWork.Emit, in one call or
// ten, under 10 keys; and in one call under one key, impl=uno-1emit-1key). Without events every Watermill variant is
// the same plain pgx.BeginFunc transaction; uno's is the same uow Do without Emit.
//
// `benchstat -col /events -row /impl` shows what 10 events cost each implementation.
func BenchmarkEmit(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	impls := emitImpls(b, pool)
	keys := make([]string, emitKeys)
	for i := range keys {
		keys[i] = keyName(i)
	}

	for _, n := range []int{0, 10} {
		b.Run("events="+strconv.Itoa(n), func(b *testing.B) {
			for _, impl := range impls {
				b.Run("impl="+impl.name, func(b *testing.B) {
					impl.reset(b)
					evs := make([]eventRef, n)
					seq := int64(0)
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						for j := range evs {
							evs[j] = eventRef{key: keys[(int(seq)+j)%emitKeys], seq: seq}
						}
						seq++
						if err := impl.commit(ctx, evs); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					if got := countRows(b, pool, txTable); got != b.N {
						b.Fatalf("%d domain rows committed, want %d", got, b.N)
					}
					if got := impl.outboxRows(b); got != n*b.N {
						b.Fatalf("%d events in the outbox, want %d", got, n*b.N)
					}
				})
			}
		})
	}
}

// BenchmarkEmitParallel is BenchmarkEmit's one-Publish and one-Emit cases from 16
// goroutines on a 20-connection pool, the way a service's concurrent requests commit:
// it shows whether emitting transactions still commit side by side (their WAL flushes
// shared) or one after another. ns/op is the wall time per transaction of the whole.
func BenchmarkEmitParallel(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var impls []emitImpl
	for _, impl := range emitImpls(b, pool) {
		if impl.name == "watermill-1publish" || impl.name == "uno-1emit" {
			impls = append(impls, impl)
		}
	}
	for _, n := range []int{0, 10} {
		b.Run("events="+strconv.Itoa(n), func(b *testing.B) {
			for _, impl := range impls {
				b.Run("impl="+impl.name, func(b *testing.B) {
					impl.reset(b)
					var next atomic.Int64
					b.ReportAllocs()
					b.SetParallelism(parallelism(parallelGoroutines))
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						evs := make([]eventRef, n)
						for pb.Next() {
							seq := next.Add(1)
							for j := range evs {
								evs[j] = eventRef{key: keyName((int(seq) + j) % emitKeys), seq: seq}
							}
							if err := impl.commit(ctx, evs); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.StopTimer()
					if got := countRows(b, pool, txTable); got != b.N {
						b.Fatalf("%d domain rows committed, want %d", got, b.N)
					}
					if got := impl.outboxRows(b); got != n*b.N {
						b.Fatalf("%d events in the outbox, want %d", got, n*b.N)
					}
				})
			}
		})
	}
}
