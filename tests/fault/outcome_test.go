package fault_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/internal/faultproxy"
	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

// tally counts what a Do did: runs of fn and hooks of each kind.
type tally struct{ runs, commits, rollbacks atomic.Int32 }

// hooks registers a commit and a rollback hook on ctx's transaction that count.
func (c *tally) hooks(t *testing.T, ctx context.Context) {
	c.runs.Add(1)
	require.NoError(t, txmanager.OnCommit(ctx, func(context.Context) error { c.commits.Add(1); return nil }))
	require.NoError(t, txmanager.OnRollback(ctx, func(context.Context) error { c.rollbacks.Add(1); return nil }))
}

func (c *tally) assert(t *testing.T, runs, commits, rollbacks int32) {
	t.Helper()
	assert.Equal(t, runs, c.runs.Load(), "runs of fn")
	assert.Equal(t, commits, c.commits.Load(), "commit hooks run")
	assert.Equal(t, rollbacks, c.rollbacks.Load(), "rollback hooks run")
}

// insertDo runs a Do that registers c's hooks and inserts v into tbl.
func insertDo(t *testing.T, p *proxied, c *tally, tbl, v string) error {
	ctx := testCtx(t)
	return p.tm.Do(ctx, func(ctx context.Context) error {
		c.hooks(t, ctx)
		_, err := p.tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ($1)", v)
		return err
	})
}

func fired(t *testing.T, cut <-chan struct{}) {
	t.Helper()
	select {
	case <-cut:
	default:
		t.Fatal("the proxy never cut the connection")
	}
}

func oneAttempt() txmanager.RetryPolicy { return txmanager.RetryPolicy{MaxAttempts: 1} }

func TestCommitAnswerLostIsResolvedAsCommitted(t *testing.T) {
	p := newProxied(t, 2, oneAttempt())
	tbl := table(t, p.pool)
	var c tally
	// COMMIT reaches the server and commits; the client never gets its answer.
	cut := p.proxy.Arm(faultproxy.Point{Match: faultproxy.ServerCompletes("COMMIT")})
	err := insertDo(t, p, &c, tbl, "a")
	fired(t, cut)
	require.NoError(t, err, "the server committed: Do reports it")
	assert.Equal(t, 1, count(t, p.pool, tbl, "a"))
	c.assert(t, 1, 1, 0)
	assert.Contains(t, p.log.String(), "the server reports the transaction committed")
	pgtest.RequireNoAcquired(t, p.pool)
}

func TestCommitAnswerLostOfAReadOnlyTransactionIsCommitted(t *testing.T) {
	p := newProxied(t, 2, oneAttempt())
	tbl := table(t, p.pool)
	_, err := p.pool.Exec(testCtx(t), "insert into "+tbl+" (v) values ('r')")
	require.NoError(t, err)
	// A replica's Manager over the proxied pool (on the same database here), made from a
	// Manager over a direct pool: its transactions are read-only.
	direct := pgtest.NewPool(t, pgtest.PoolConfig(t))
	logger, log := logcapture.NewText()
	primary, err := txmanager.New(direct, txmanager.Config{Logger: logger, Retry: oneAttempt()})
	require.NoError(t, err)
	replica, err := primary.Replica(p.pool)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context, fn func(ctx context.Context) error) error
		tm   *txmanager.Manager // the Manager whose Querier fn reads through
		log  *logcapture.Buffer
	}{
		{"ReadOnly", func(ctx context.Context, fn func(ctx context.Context) error) error {
			return p.tm.Do(ctx, fn, txmanager.ReadOnly())
		}, p.tm, p.log},
		{"a replica's Manager", func(ctx context.Context, fn func(ctx context.Context) error) error {
			return replica.Do(ctx, fn)
		}, primary, log}, // the primary's Manager reads in the replica's transaction
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c tally
			n := 0
			cut := p.proxy.Arm(faultproxy.Point{Match: faultproxy.ServerCompletes("COMMIT")})
			err := tc.do(testCtx(t), func(ctx context.Context) error {
				c.hooks(t, ctx)
				return tc.tm.Querier(ctx).QueryRow(ctx, "select count(*) from "+tbl).Scan(&n)
			})
			fired(t, cut)
			require.NoError(t, err, "a read-only transaction wrote nothing: there is no outcome to learn")
			assert.Equal(t, 1, n, "fn's read stands")
			c.assert(t, 1, 1, 0)
			assert.Contains(t, tc.log.String(), "COMMIT of a read-only transaction")
			pgtest.RequireNoAcquired(t, p.pool)
		})
	}
}

// migrated migrates the package database for the outbox and returns an Outbox and a
// unit-of-work Manager over p.
func migrated(t *testing.T, p *proxied) (*events.Outbox, *uow.Manager) {
	t.Helper()
	require.NoError(t, schema.MigratePool(testCtx(t), pgtest.Pool(t)))
	outbox := events.NewOutbox(events.OutboxConfig{})
	units, err := uow.NewManager(p.tm, outbox)
	require.NoError(t, err)
	return outbox, units
}

// pending reports whether the outbox holds the event with id.
func pending(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) bool {
	t.Helper()
	evs, err := events.ReadPending(testCtx(t), pool, 0)
	require.NoError(t, err)
	for _, ev := range evs {
		if ev.ID == id {
			return true
		}
	}
	return false
}

func TestCommitAnswerLostWithOutboxRowsIsResolvedAsCommitted(t *testing.T) {
	p := newProxied(t, 2, oneAttempt())
	_, units := migrated(t, p)
	ctx := testCtx(t)
	tbl := table(t, p.pool)
	var c tally
	ev := events.New("fault.committed", map[string]string{"v": "b"}, events.WithKey("b"))
	var cut <-chan struct{}
	err := units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		c.hooks(t, ctx)
		if _, err := p.tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ('b')"); err != nil {
			return err
		}
		// The outbox row rides in the COMMIT round trip (one statement that inserts and
		// notifies: its tag is SELECT); its answer and COMMIT's are lost, mid-batch.
		cut = p.proxy.Arm(faultproxy.Point{Match: faultproxy.ServerCompletes("SELECT")})
		return u.Emit(ev)
	})
	fired(t, cut)
	require.NoError(t, err)
	assert.Equal(t, 1, count(t, p.pool, tbl, "b"))
	assert.True(t, pending(t, p.pool, ev.ID), "the committed transaction's event is in the outbox for the relay")
	c.assert(t, 1, 1, 0)
}

func TestCommitAnswerLostWithoutTransactionIDIsUnknown(t *testing.T) {
	p := newProxied(t, 2, txmanager.RetryPolicy{}) // the default policy: retries allowed
	_, units := migrated(t, p)
	ctx := testCtx(t)
	var c tally
	ev := events.New("fault.unknown", map[string]string{"v": "c"}, events.WithKey("c"))
	// Only the outbox row writes, in the COMMIT round trip itself: the transaction had no
	// id before COMMIT, so the server cannot be asked.
	cut := p.proxy.Arm(faultproxy.Point{Match: faultproxy.ServerCompletes("COMMIT")})
	err := units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		c.hooks(t, ctx)
		return u.Emit(ev)
	})
	fired(t, cut)
	require.Error(t, err)
	require.ErrorIs(t, err, txmanager.ErrCommitOutcomeUnknown)
	var oe *txmanager.CommitOutcomeError
	require.ErrorAs(t, err, &oe)
	assert.False(t, pgconn.SafeToRetry(err), "SafeToRetry must be false: it may have committed")
	c.assert(t, 1, 0, 0) // never retried, no hook of either kind
	assert.True(t, pending(t, p.pool, ev.ID), "it did commit: unknown was the honest answer")
	t.Logf("error: %v", err)
}

func TestCommitCutBeforeItReachedTheServerIsRetried(t *testing.T) {
	p := newProxied(t, 2, txmanager.RetryPolicy{InitialInterval: time.Millisecond})
	tbl := table(t, p.pool)
	var c tally
	cut := p.proxy.Arm(faultproxy.Point{Match: faultproxy.ClientRuns("commit")})
	err := insertDo(t, p, &c, tbl, "d")
	fired(t, cut)
	require.NoError(t, err)
	assert.Equal(t, 1, count(t, p.pool, tbl, "d"), "the first attempt rolled back, the second committed")
	c.assert(t, 2, 1, 1)
}

func TestCommitCutBeforeItReachedTheServerIsAnOrdinaryFailure(t *testing.T) {
	p := newProxied(t, 2, oneAttempt())
	tbl := table(t, p.pool)
	var c tally
	cut := p.proxy.Arm(faultproxy.Point{Match: faultproxy.ClientRuns("commit")})
	err := insertDo(t, p, &c, tbl, "e")
	fired(t, cut)
	require.Error(t, err)
	assert.False(t, errors.Is(err, txmanager.ErrCommitOutcomeUnknown), "rolled back is not unknown: %v", err)
	assert.Contains(t, err.Error(), "rolled back")
	assert.Equal(t, 0, count(t, p.pool, tbl, "e"))
	c.assert(t, 1, 0, 1)
}

func TestConnectionCutMidBatchAndMidRowsIsRetried(t *testing.T) {
	p := newProxied(t, 2, txmanager.RetryPolicy{InitialInterval: time.Millisecond})
	ctx := testCtx(t)
	tbl := table(t, p.pool)
	for _, tc := range []struct {
		name  string
		point faultproxy.Point
	}{
		{"mid-batch: BEGIN ran, the statement's answer is lost", faultproxy.Point{Match: faultproxy.ServerCompletes("INSERT")}},
		{"mid-rows: the 10th row of 100", faultproxy.Point{Match: faultproxy.ServerSendsRow(10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c tally
			v := tc.name
			cut := p.proxy.Arm(tc.point)
			err := p.tm.Do(ctx, func(ctx context.Context) error {
				c.hooks(t, ctx)
				if _, err := p.tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ($1)", v); err != nil {
					return err
				}
				rows, err := p.tm.Querier(ctx).Query(ctx, "select g from generate_series(1, 100) g")
				if err != nil {
					return err
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil {
					return err
				}
				if n != 100 {
					return errors.New("short read")
				}
				return nil
			})
			fired(t, cut)
			require.NoError(t, err)
			assert.Equal(t, 1, count(t, p.pool, tbl, v))
			c.assert(t, 2, 1, 1)
		})
	}
	pgtest.RequireNoAcquired(t, p.pool)
}

// TestCommitAnswerLostAfterAFailoverIsUnknownAtOnce: with several hosts configured, a
// lost COMMIT whose server cannot be reached any more, while the pool's configuration
// now reaches another server that accepts writes, is reported unknown at once, not after
// CommitResolveTimeout: after a failover only the old server could tell, and it is not
// coming back in time. The first host is a proxy of the package database that stops
// relaying when it cuts COMMIT's answer; the second, the database itself.
func TestCommitAnswerLostAfterAFailoverIsUnknownAtOnce(t *testing.T) {
	pc := pgtest.PoolConfig(t)
	direct := pc.ConnConfig.Copy()
	proxy, err := faultproxy.Start(direct.Host + ":" + strconv.Itoa(int(direct.Port)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	pc.ConnConfig.Host, pc.ConnConfig.Port = proxy.Host(), proxy.Port()
	pc.ConnConfig.Fallbacks = []*pgconn.FallbackConfig{{Host: direct.Host, Port: direct.Port, TLSConfig: direct.TLSConfig}}
	pc.ConnConfig.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsReadWrite
	pc.MaxConns = 2
	pool := pgtest.NewPool(t, pc)
	logger, _ := logcapture.NewText()
	tm, err := txmanager.New(pool, txmanager.Config{Logger: logger, Retry: oneAttempt(), CommitResolveTimeout: 10 * time.Minute})
	require.NoError(t, err)
	tbl := table(t, pool)

	commitDone := faultproxy.ServerCompletes("COMMIT")
	cut := proxy.Arm(faultproxy.Point{Match: func(m *faultproxy.Message) bool {
		if !commitDone(m) {
			return false
		}
		proxy.Refuse(true) // the first host is gone from now on
		return true
	}})
	var c tally
	err = tm.Do(testCtx(t), func(ctx context.Context) error {
		c.hooks(t, ctx)
		_, err := tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ($1)", "a")
		return err
	})
	fired(t, cut)
	require.ErrorIs(t, err, txmanager.ErrCommitOutcomeUnknown)
	assert.ErrorContains(t, err, "now accepts writes", "given up because another server took over, not after the timeout")
	c.assert(t, 1, 0, 0)
	assert.Equal(t, 1, count(t, pool, tbl, "a"), "it did commit (both hosts are one database): unknown was the honest answer")
}
