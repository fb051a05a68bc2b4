package replica_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/roundtrip"
	"github.com/uno-framework/uno/replica"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestTrackingAddsNoRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	var turns roundtrip.Counter
	cfg := pgtest.PoolConfig(t)
	turns.Install(cfg)
	pool := pgtest.NewPool(t, cfg)
	_, err := pool.Exec(ctx, "create table rt (n int)")
	require.NoError(t, err)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	set, err := replica.New(ctx, tm, nil, replica.Config{Logger: discard()})
	require.NoError(t, err)
	set.Close() // no probes on the counted connection
	ins := func(ctx context.Context) error {
		_, err := tm.Querier(ctx).Exec(ctx, "insert into rt values (1)")
		return err
	}
	sess := replica.NewSession()
	cases := []struct {
		name string
		do   func() error
	}{
		{"txmanager Do", func() error { return tm.Do(ctx, ins) }},
		{"Set.Do without a session", func() error { return set.Do(ctx, ins) }},
		{"Set.Do with a session (tracked)", func() error { return set.Do(replica.WithSession(ctx, sess), ins) }},
	}
	got := map[string]int64{}
	for _, c := range cases {
		require.NoError(t, c.do()) // warm the statement cache
		before := turns.Load()
		require.NoError(t, c.do())
		got[c.name] = turns.Load() - before
		t.Logf("%-35s %d round trips", c.name, got[c.name])
	}
	assert.Equal(t, int64(2), got["txmanager Do"])
	assert.Equal(t, got["txmanager Do"], got["Set.Do without a session"])
	assert.Equal(t, got["txmanager Do"], got["Set.Do with a session (tracked)"], "the commit position rides with COMMIT")
	pos, _ := sess.Position()
	assert.NotZero(t, pos, "the session learnt its commit's position")
}
