package replica_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/replica"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
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
		_, err := r.set.Querier(ctx).Exec(ctx, "insert into t values ($1)", n)
		return err
	}))
}

// sees reports whether a Read with ctx finds row n.
func (r *replicated) sees(t *testing.T, ctx context.Context, n int) bool {
	t.Helper()
	var ok bool
	require.NoError(t, r.set.Read(ctx, func(ctx context.Context) error {
		return r.set.Querier(ctx).QueryRow(ctx, "select exists (select from t where n = $1)", n).Scan(&ok)
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
	r.delay(t, "3s")
	r.insert(t, ctx, 1)
	require.Eventually(t, func() bool {
		before := r.set.Stats().PrimaryReads
		return r.sees(t, ctx, 1) && r.set.Stats().PrimaryReads > before
	}, 2*time.Second, 10*time.Millisecond, "reads leave the lagging replica within its bound")
	r.delay(t, "")

	// With the replica down, reads run on the primary.
	require.NoError(t, r.standby.Stop(ctx))
	for i := range 20 {
		assert.True(t, r.sees(t, ctx, 1), "read %d", i)
	}
	assert.GreaterOrEqual(t, r.set.Stats().PrimaryReads, int64(20))
}
