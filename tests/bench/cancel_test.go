package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// BenchmarkCancel runs one-INSERT Dos from 16 goroutines on a pool built by package pool
// (health monitor on, 1 s period; MinConns = MaxConns, so that a destroyed connection
// is replaced in the background), with none of them cancelled (cancelled=0%) and with 1%
// of them cancelled in the middle of a statement (cancelled=1%: pg_sleep(0.01), its
// context cancelled after 1 ms; pgx closes the connection). A cancellation costs the
// connection it destroys and nothing more: the pool is never reset (the benchmark
// fails if it is). Reported: Do/s (cancelled ones included), statements that ended
// cancelled, new connections opened and pool resets over the run.
//
// That connection is what a cancellation costs, and the server pays most of it: pgx
// sends a cancel request, which PostgreSQL serves in a process it forks, and the closed
// connection is replaced by a new backend. On the 2-core VM where this benchmark runs
// next to the server (a fork and exec of /bin/true takes 5 ms there) a backend costs the
// server about 40 ms of CPU from fork to exit and a cancel request about 17 ms, while a
// whole Do costs the machine about 0.3 ms; the machine is CPU-bound, so cancelled=1%
// runs at about a third of the rate of cancelled=0% there (measured: 85 to 95 ms of
// server CPU per cancellation), however little the pool and the transaction manager
// add.
//
// pgconn.CancelRequestContextWatcherHandler would keep the connection by asking the
// server to cancel the statement instead, but a cancel request that arrives late
// cancels whatever the connection runs next (it cancelled a later TRUNCATE when this
// benchmark tried it), and it still costs the forked process (cancelled=1% ran at 0.44
// of cancelled=0% with it), so pgx's default, which closes the connection, is kept.
func BenchmarkCancel(b *testing.B) {
	for _, pct := range []int{0, 1} {
		b.Run(fmt.Sprintf("cancelled=%d%%", pct), func(b *testing.B) { benchCancel(b, pct) })
	}
}

func benchCancel(b *testing.B, pct int) {
	pc := pgtest.PoolConfig(b)
	pc.MaxConns, pc.MinConns = poolSize, poolSize
	cfg := pool.DefaultConfig()
	cfg.HealthCheckInterval = time.Second
	p, err := pool.New(context.Background(), pc, cfg)
	if err != nil {
		b.Fatalf("pool.New: %v", err)
	}
	defer p.Close()
	warm(b, p.Pgx())
	execOrFatal(b, p.Pgx(), "CREATE TABLE IF NOT EXISTS bench_cancel (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text NOT NULL)")
	tm, err := txmanager.New(p.Pgx(), txmanager.Config{})
	if err != nil {
		b.Fatalf("txmanager.New: %v", err)
	}
	before := p.Stats()
	var n, cancelled atomic.Int64
	ctx := context.Background()
	b.SetParallelism(parallelism(parallelGoroutines))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cancel := pct > 0 && n.Add(1)%int64(100/pct) == 0
			err := tm.Do(ctx, func(ctx context.Context) error {
				if _, err := tm.Querier(ctx).Exec(ctx, "INSERT INTO bench_cancel (v) VALUES ($1)", "x"); err != nil {
					return err
				}
				if !cancel {
					return nil
				}
				sctx, stop := context.WithCancel(ctx)
				time.AfterFunc(time.Millisecond, stop)
				_, err := tm.Querier(sctx).Exec(sctx, "SELECT pg_sleep(0.01)")
				stop()
				return err
			})
			switch {
			case cancel && err != nil:
				cancelled.Add(1)
			case err != nil && !cancel:
				b.Errorf("Do: %v", err)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	after := p.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "Do/s")
	b.ReportMetric(float64(after.NewConns-before.NewConns), "new-conns")
	b.ReportMetric(float64(after.Resets-before.Resets), "resets")
	b.ReportMetric(float64(cancelled.Load()), "cancelled")
	if after.Resets != before.Resets {
		b.Errorf("the pool was reset %d times", after.Resets-before.Resets)
	}
	execOrFatal(b, p.Pgx(), "TRUNCATE bench_cancel")
}
