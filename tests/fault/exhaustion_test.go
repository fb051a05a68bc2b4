package fault_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// newPooled returns a pool of size conns built by pool.New, as the provider builds it,
// and a Manager over it.
func newPooled(t *testing.T, conns int32, cfg pool.Config) (*pool.Pool, *txmanager.Manager) {
	t.Helper()
	pc := pgtest.PoolConfig(t)
	pc.MaxConns = conns
	p, err := pool.New(testCtx(t), pc, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pgtest.RequireNoAcquired(t, p.Pgx())
		p.Close()
	})
	tm, err := txmanager.New(p.Pgx(), txmanager.Config{})
	require.NoError(t, err)
	return p, tm
}

func TestRequiresNewOnAPoolItsOuterTransactionHoldsFailsFast(t *testing.T) {
	_, tm := newPooled(t, 1, pool.DefaultConfig()) // acquire timeout: 30s
	ctx := testCtx(t)
	var elapsed time.Duration
	err := tm.Do(ctx, func(ctx context.Context) error {
		if _, err := tm.Querier(ctx).Exec(ctx, "select 1"); err != nil { // the outer holds the only connection
			return err
		}
		start := time.Now()
		err := tm.Do(ctx, func(ctx context.Context) error {
			_, err := tm.Querier(ctx).Exec(ctx, "select 2")
			return err
		}, txmanager.RequiresNew())
		elapsed = time.Since(start)
		return err
	})
	require.ErrorIs(t, err, txmanager.ErrNestedAcquireDeadlock)
	assert.Contains(t, err.Error(), "hold 1 of the pool's 1 connections")
	assert.Less(t, elapsed, 100*time.Millisecond, "fails fast")
	t.Logf("failed after %s: %v", elapsed, err)
}

func TestRequiresNewWaitingOnEachOtherFailsFastAndTheOtherGoesOn(t *testing.T) {
	_, tm := newPooled(t, 2, pool.DefaultConfig())
	ctx := testCtx(t)
	both := make(chan struct{})
	arrived := make(chan struct{}, 2)
	run := func() error {
		return tm.Do(ctx, func(ctx context.Context) error {
			if _, err := tm.Querier(ctx).Exec(ctx, "select 1"); err != nil {
				return err
			}
			arrived <- struct{}{}
			<-both // both outer transactions hold a connection now
			return tm.Do(ctx, func(ctx context.Context) error {
				_, err := tm.Querier(ctx).Exec(ctx, "select 2")
				return err
			}, txmanager.RequiresNew())
		}, txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 1}))
	}
	errs := make(chan error, 2)
	go func() { errs <- run() }()
	go func() { errs <- run() }()
	<-arrived
	<-arrived
	close(both)
	var failed, ok int
	for range 2 {
		select {
		case err := <-errs:
			switch {
			case err == nil:
				ok++
			case errors.Is(err, txmanager.ErrNestedAcquireDeadlock):
				failed++
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("deadlocked")
		}
	}
	assert.Equal(t, 1, ok, "the other transaction got the connection released by the one that failed")
	assert.Equal(t, 1, failed)
}

func TestAcquireTimeoutIsThePoolsTypedError(t *testing.T) {
	cfg := pool.DefaultConfig()
	cfg.AcquireTimeout = 200 * time.Millisecond
	p, tm := newPooled(t, 1, cfg)
	ctx := testCtx(t)
	c, err := p.Acquire(ctx) // someone else holds the only connection
	require.NoError(t, err)
	defer c.Release()
	start := time.Now()
	err = tm.Do(ctx, func(ctx context.Context) error {
		_, err := tm.Querier(ctx).Exec(ctx, "select 1")
		return err
	})
	require.ErrorIs(t, err, pool.ErrAcquireTimeout)
	var te *pool.AcquireTimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, cfg.AcquireTimeout, te.Timeout)
	assert.Less(t, time.Since(start), 10*time.Second)
	t.Logf("after %s: %v", time.Since(start), err)
}
