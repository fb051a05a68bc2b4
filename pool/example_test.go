package pool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/pool"
)

// A pool with a health monitor that reports outages, and an acquire timeout.
func ExampleNew() {
	pcfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := pool.DefaultConfig()
	cfg.AcquireTimeout = 2 * time.Second
	cfg.HealthCheckInterval = 10 * time.Second
	cfg.Logger = slog.Default()
	cfg.OnStateChange = func(s pool.State) { fmt.Println("database is", s) }

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pool.New(ctx, pcfg, cfg) // waits, with backoff, until the server answers
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	conn, err := p.Acquire(ctx)
	if errors.Is(err, pool.ErrAcquireTimeout) {
		fmt.Println("pool exhausted:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Release()
	var n int
	_ = conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	fmt.Println(n, p.Stats().State)
}

func ExampleAcquireTimeoutError() {
	var err error = &pool.AcquireTimeoutError{Timeout: 200 * time.Millisecond, MaxConns: 2, AcquiredConns: 2}
	fmt.Println(errors.Is(err, pool.ErrAcquireTimeout))
	fmt.Println(err)
	// Output:
	// true
	// pool: timed out after 200ms waiting for a connection: all 2 connections are in use; release connections sooner (close rows, end transactions) or raise the pool size
}
