package pgserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
)

// startPrimary starts a local server for a standby, skipping without binaries.
func startPrimary(t *testing.T, ctx context.Context) *pgserver.Server {
	t.Helper()
	srv, err := pgserver.StartLocal(ctx)
	if errors.Is(err, pgserver.ErrNoBinaries) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	return srv
}

// eventually polls cond every 20ms until it holds or 30 seconds pass.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 20*time.Millisecond, msg)
}

func TestStandbyStreamsDelaysAndPromotes(t *testing.T) {
	ctx := testContext(t)
	primary := startPrimary(t, ctx)
	standby, err := primary.StartStandby(ctx, pgserver.Synchronous())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, standby.Close()) })
	assert.NotEqual(t, primary.Port(), standby.Port())

	pc := connect(t, ctx, primary.URL)
	sc := connect(t, ctx, standby.URL)
	assert.Equal(t, "on", queryString(t, ctx, sc, "SELECT current_setting('transaction_read_only')"))
	assert.Equal(t, "sync", queryString(t, ctx, pc, "SELECT sync_state FROM pg_stat_replication"))

	_, err = pc.Exec(ctx, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	count := func() int {
		var n int
		if err := sc.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			return -1
		}
		return n
	}
	eventually(t, func() bool { return count() == 1 }, "the standby replays the primary's insert")

	// A replay delay holds the next commit back on the standby.
	require.NoError(t, standby.SetSetting(ctx, "recovery_min_apply_delay", "1s"))
	eventually(t, func() bool {
		return queryString(t, ctx, sc, "SELECT current_setting('recovery_min_apply_delay')") == "1s"
	}, "the standby reloads its configuration")
	_, err = pc.Exec(ctx, "INSERT INTO t VALUES (2)")
	require.NoError(t, err)
	assert.Equal(t, 1, count(), "the delayed standby has not replayed the second insert yet")
	eventually(t, func() bool { return count() == 2 }, "the standby replays the insert after the delay")
	require.NoError(t, standby.SetSetting(ctx, "recovery_min_apply_delay", ""))

	// Failover: stop the primary, promote the standby, write there.
	require.NoError(t, primary.Stop(ctx))
	require.NoError(t, standby.Promote(ctx))
	nc := connect(t, ctx, standby.URL)
	_, err = nc.Exec(ctx, "INSERT INTO t VALUES (3)")
	require.NoError(t, err, "the promoted standby accepts writes")
	assert.ErrorIs(t, standby.Promote(ctx), pgserver.ErrNotStandby)
}

func TestAsynchronousStandby(t *testing.T) {
	ctx := testContext(t)
	primary := startPrimary(t, ctx)
	standby, err := primary.StartStandby(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, standby.Close()) })

	pc := connect(t, ctx, primary.URL)
	assert.Equal(t, "async", queryString(t, ctx, pc, "SELECT sync_state FROM pg_stat_replication"))
	// With the standby down, an asynchronous primary commits anyway.
	require.NoError(t, standby.Stop(ctx))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pc.Exec(cctx, "CREATE TABLE t (n int)")
	require.NoError(t, err)
	require.NoError(t, standby.Start(ctx))
	sc := connect(t, ctx, standby.URL)
	eventually(t, func() bool {
		var ok bool
		return sc.QueryRow(ctx, "SELECT to_regclass('t') IS NOT NULL").Scan(&ok) == nil && ok
	}, "the restarted standby catches up")
}

func TestStartStandbyNeedsALocalPrimary(t *testing.T) {
	srv := &pgserver.Server{URL: pgserver.LocalhostURL}
	_, err := srv.StartStandby(testContext(t))
	assert.ErrorIs(t, err, pgserver.ErrNotLocal)
}
