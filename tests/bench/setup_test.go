package bench

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/tests/pgtest"
)

// parallelGoroutines is the number of goroutines the Parallel cases run.
const parallelGoroutines = 16

// poolSize is the MaxConns of every pool the benchmarks use: enough for
// parallelGoroutines without waiting, plus a few for checks and relays.
const poolSize = parallelGoroutines + 4

// benchPool returns a pool on the package database with poolSize connections, all of them
// opened before it returns so that no case pays for connecting.
func benchPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	cfg := pgtest.PoolConfig(tb)
	cfg.MaxConns = poolSize
	pool := pgtest.NewPool(tb, cfg)
	warm(tb, pool)
	return pool
}

// warm opens every connection of pool.
func warm(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	conns := make([]*pgxpool.Conn, 0, pool.Config().MaxConns)
	for range pool.Config().MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			tb.Fatalf("warm the pool: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		if err := c.Ping(ctx); err != nil {
			tb.Fatalf("warm the pool: %v", err)
		}
		c.Release()
	}
}

// execOrFatal runs sql on pool and fails tb on error.
func execOrFatal(tb testing.TB, pool *pgxpool.Pool, sql string) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// countRows returns the number of rows of table.
func countRows(tb testing.TB, pool *pgxpool.Pool, table string) int {
	tb.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		tb.Fatalf("count rows of %s: %v", table, err)
	}
	return n
}

// parallelism returns the argument to b.SetParallelism that makes RunParallel start at
// least n goroutines (n rounded up to a multiple of GOMAXPROCS).
func parallelism(n int) int {
	p := runtime.GOMAXPROCS(0)
	return max(1, (n+p-1)/p)
}

// measureCPU starts measuring the CPU time the benchmark process spends (uno, pgx, the
// runtime; user and system); the function it returns reports it per operation as
// cpu-ns/op. Unlike sec/op, it leaves out the wait for the server, whose latency swings
// widely on a shared machine. Call it just before the loop and the result just after.
func measureCPU(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

// processCPU returns the CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
