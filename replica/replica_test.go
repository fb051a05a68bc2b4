package replica_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/replica"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
	"github.com/uno-framework/uno/txmanager/sqldriver"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// replicated is a primary with a table t, an asynchronous standby, and a Set over them.
type replicated struct {
	primary, standby *pgserver.Server
	tm               *txmanager.Manager
	set              *replica.Set
}

func newReplicated(t *testing.T, cfg replica.Config) *replicated {
	t.Helper()
	ctx := testCtx(t)
	primary := pgtest.LocalServer(t)
	standby := pgtest.Standby(t, primary)
	pool := pgtest.NewPool(t, mustPoolConfig(t, primary.URL))
	_, err := pool.Exec(ctx, "create table t (n int primary key)")
	require.NoError(t, err)
	standbyPool := pgtest.NewPool(t, mustPoolConfig(t, standby.URL))
	tm, err := txmanager.New(pool, txmanager.Config{Logger: discard()})
	require.NoError(t, err)
	cfg.Logger = discard()
	set, err := replica.New(ctx, tm, []*pgxpool.Pool{standbyPool}, cfg)
	require.NoError(t, err)
	t.Cleanup(set.Close)
	return &replicated{primary: primary, standby: standby, tm: tm, set: set}
}

func mustPoolConfig(t *testing.T, url string) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	return cfg
}

// insert commits row n on the primary through the Set (tracked when ctx has a session).
func (r *replicated) insert(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	require.NoError(t, r.set.Do(ctx, func(ctx context.Context) error {
		_, err := r.tm.Querier(ctx).Exec(ctx, "insert into t values ($1)", n)
		return err
	}))
}

// sees reports whether a Read with ctx finds row n.
func (r *replicated) sees(t *testing.T, ctx context.Context, n int) bool {
	t.Helper()
	var ok bool
	require.NoError(t, r.set.Read(ctx, func(ctx context.Context) error {
		return r.tm.Querier(ctx).QueryRow(ctx, "select exists (select from t where n = $1)", n).Scan(&ok)
	}))
	return ok
}

// delay sets the standby's replay delay and waits until it applies.
func (r *replicated) delay(t *testing.T, d string) {
	t.Helper()
	ctx := testCtx(t)
	require.NoError(t, r.standby.SetSetting(ctx, "recovery_min_apply_delay", d))
	time.Sleep(100 * time.Millisecond) // the reload is asynchronous
}

func TestReadYourWritesOnALaggingReplica(t *testing.T) {
	r := newReplicated(t, replica.Config{WaitTimeout: 2 * time.Second})
	r.delay(t, "5ms")
	ctx := testCtx(t)

	// With the session: 1,000 reads right after their commit, none misses it.
	sctx := replica.WithSession(ctx, replica.NewSession())
	const n = 1000
	misses := 0
	var reading time.Duration
	for i := range n {
		r.insert(t, sctx, i)
		start := time.Now()
		if !r.sees(t, sctx, i) {
			misses++
		}
		reading += time.Since(start)
	}
	st := r.set.Stats()
	t.Logf("with the session: %d misses in %d reads; %d on the replica (%d waited for it), %d on the primary; mean read %v (replay delay 5ms)",
		misses, n, st.ReplicaReads, st.Waits, st.PrimaryReads, (reading / n).Round(10*time.Microsecond))
	assert.Zero(t, misses, "a read of the session never misses the session's commit")
	assert.Greater(t, st.ReplicaReads, int64(n*9/10), "the reads ran on the replica, after waiting for it")

	// Without it, a read right after the commit runs on the replica as soon as it is
	// within the staleness bound, and may miss the commit.
	stale := 0
	for i := n; i < n+200; i++ {
		r.insert(t, ctx, i)
		if !r.sees(t, ctx, i) {
			stale++
		}
	}
	t.Logf("without the session: %d of 200 reads right after the commit missed it", stale)
	assert.Positive(t, stale, "a read without the token may be stale")

	// A token carried across requests resumes the session.
	tok := replica.SessionFrom(sctx).Token()
	require.NotEmpty(t, tok)
	resumed, err := replica.ResumeSession(tok)
	require.NoError(t, err)
	assert.True(t, r.sees(t, replica.WithSession(ctx, resumed), n-1))
}

func TestReadsLeaveAReplicaPastTheStalenessBoundAndOneThatIsDown(t *testing.T) {
	r := newReplicated(t, replica.Config{MaxLag: 300 * time.Millisecond, CheckInterval: 20 * time.Millisecond})
	ctx := testCtx(t)
	// A fresh idle replica serves reads.
	require.Eventually(t, func() bool {
		before := r.set.Stats().ReplicaReads
		r.sees(t, ctx, 0)
		return r.set.Stats().ReplicaReads > before
	}, 10*time.Second, 20*time.Millisecond, "an idle replica in sync serves reads")

	// A replica 3 seconds behind is past the bound: reads go to the primary and see the
	// write.
	// The standby applies the delay once it has processed the reload, a moment after
	// delay returns: until then it replays each row at once, so every attempt writes a
	// row of its own.
	r.delay(t, "3s")
	r.insert(t, ctx, 1)
	row := 1
	require.Eventually(t, func() bool {
		row++
		r.insert(t, ctx, row)
		before := r.set.Stats().PrimaryReads
		return r.sees(t, ctx, row) && r.set.Stats().PrimaryReads > before
	}, 10*time.Second, 10*time.Millisecond, "reads leave the lagging replica within its bound")
	r.delay(t, "")

	// With the replica down, reads run on the primary.
	require.NoError(t, r.standby.Stop(ctx))
	for i := range 20 {
		assert.True(t, r.sees(t, ctx, 1), "read %d", i)
	}
	assert.GreaterOrEqual(t, r.set.Stats().PrimaryReads, int64(20))
}

// probe is what pg_is_in_recovery() said (true: the standby ran it) through each way
// code on the primary's Manager runs statements.
type probe struct{ querier, routing, ent, sql bool }

const inRecovery = "select pg_is_in_recovery()"

// probe asks pg_is_in_recovery() through tm.Querier, tm's own QueryRow (sqlc's
// db.New(tm)), an ent driver over tm and a *sql.DB over tm.
func (r *replicated) probe(ctx context.Context, drv *entdriver.Driver, db *sql.DB) (probe, error) {
	var p probe
	if err := r.tm.Querier(ctx).QueryRow(ctx, inRecovery).Scan(&p.querier); err != nil {
		return p, err
	}
	if err := r.tm.QueryRow(ctx, inRecovery).Scan(&p.routing); err != nil {
		return p, err
	}
	var rows entsql.Rows
	if err := drv.Query(ctx, inRecovery, []any{}, &rows); err != nil {
		return p, err
	}
	for rows.Next() {
		if err := rows.Scan(&p.ent); err != nil {
			_ = rows.Close()
			return p, err
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return p, err
	}
	return p, db.QueryRowContext(ctx, inRecovery).Scan(&p.sql)
}

// read runs fn in a Read and reports whether it ran on the replica.
func (r *replicated) read(t *testing.T, ctx context.Context, fn func(ctx context.Context) error) (onReplica bool, err error) {
	t.Helper()
	before := r.set.Stats()
	err = r.set.Read(ctx, fn)
	after := r.set.Stats()
	require.Equal(t, int64(1), after.ReplicaReads+after.PrimaryReads-before.ReplicaReads-before.PrimaryReads)
	return after.ReplicaReads > before.ReplicaReads, err
}

// primaryHas reports whether row n is committed on the primary.
func (r *replicated) primaryHas(t *testing.T, ctx context.Context, n int) bool {
	t.Helper()
	var ok bool
	require.NoError(t, r.tm.Pool().QueryRow(ctx, "select exists (select from t where n = $1)", n).Scan(&ok))
	return ok
}

// checkRead checks, in Reads that run on the replica when onReplica is set and on the
// primary otherwise, what the code on the primary's Manager does: its reads run where
// the Read runs, its writes fail as in any read-only transaction, and a RequiresNew
// scope of it runs on the primary and commits. row is a row number this call may use.
func (r *replicated) checkRead(t *testing.T, ctx context.Context, onReplica bool, row int) {
	t.Helper()
	drv := entdriver.New(r.tm)
	db := sqldriver.Open(r.tm)
	defer db.Close()

	var got probe
	ran, err := r.read(t, ctx, func(ctx context.Context) error {
		var err error
		got, err = r.probe(ctx, drv, db)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, onReplica, ran)
	want := onReplica
	assert.Equal(t, probe{want, want, want, want}, got, "every way ran where the read ran")

	// A write fails; nothing reaches the primary.
	var pgErr *pgconn.PgError
	for name, write := range map[string]func(ctx context.Context) error{
		"tm.Exec": func(ctx context.Context) error {
			_, err := r.tm.Exec(ctx, "insert into t values ($1)", row)
			return err
		},
		"ent": func(ctx context.Context) error {
			return drv.Exec(ctx, "insert into t values ($1)", []any{row}, nil)
		},
		"database/sql": func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, "insert into t values ($1)", row)
			return err
		},
	} {
		ran, err := r.read(t, ctx, write)
		require.Equal(t, onReplica, ran, name)
		require.ErrorAs(t, err, &pgErr, name)
		assert.Equal(t, "25006", pgErr.Code, "%s: a write in the read fails as read-only", name)
	}
	assert.False(t, r.primaryHas(t, ctx, row), "no write reached the primary")

	// A RequiresNew scope runs on the primary and commits; the read goes on where it ran.
	var inner, after bool
	ran, err = r.read(t, ctx, func(ctx context.Context) error {
		err := r.tm.Do(ctx, func(ctx context.Context) error {
			if err := r.tm.QueryRow(ctx, inRecovery).Scan(&inner); err != nil {
				return err
			}
			_, err := r.tm.Exec(ctx, "insert into t values ($1)", row)
			return err
		}, txmanager.RequiresNew())
		if err != nil {
			return err
		}
		return r.tm.QueryRow(ctx, inRecovery).Scan(&after)
	})
	require.NoError(t, err)
	require.Equal(t, onReplica, ran)
	assert.False(t, inner, "the RequiresNew scope ran on the primary")
	assert.Equal(t, onReplica, after, "the read went on where it ran")
	assert.True(t, r.primaryHas(t, ctx, row), "the RequiresNew scope committed")
	pgtest.RequireNoAcquired(t, r.tm.Pool())
}

func TestCodeOnThePrimarysManagerRunsInTheRead(t *testing.T) {
	// A generous staleness bound: the replica keeps serving reads on a loaded machine.
	r := newReplicated(t, replica.Config{MaxLag: 5 * time.Second})
	ctx := testCtx(t)
	require.Eventually(t, func() bool {
		ran, err := r.read(t, ctx, func(ctx context.Context) error { return nil })
		require.NoError(t, err)
		return ran
	}, 10*time.Second, 20*time.Millisecond, "an idle replica in sync serves reads")

	t.Run("on the replica", func(t *testing.T) { r.checkRead(t, ctx, true, 1) })

	// With the replica down, reads run on the primary and the same code works there.
	require.NoError(t, r.standby.Stop(ctx))
	require.Eventually(t, func() bool {
		ran, err := r.read(t, ctx, func(ctx context.Context) error {
			return r.tm.QueryRow(ctx, "select 1").Scan(new(int))
		})
		require.NoError(t, err)
		return !ran
	}, 10*time.Second, 20*time.Millisecond, "reads leave the replica that is down")
	t.Run("on the primary", func(t *testing.T) { r.checkRead(t, ctx, false, 2) })
}
