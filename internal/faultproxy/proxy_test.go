package faultproxy_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/faultproxy"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T) (*faultproxy.Proxy, *pgx.Conn) {
	t.Helper()
	cfg, err := pgx.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	p, err := faultproxy.Start(cfg.Host + ":" + strconv.Itoa(int(cfg.Port)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	cfg.Host, cfg.Port, cfg.Fallbacks = p.Host(), p.Port(), nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return p, c
}

func TestProxyRelaysAndCutsBeforeAStatement(t *testing.T) {
	p, c := connect(t)
	ctx := context.Background()
	var n int
	require.NoError(t, c.QueryRow(ctx, "select $1::int + 1", 41).Scan(&n))
	assert.Equal(t, 42, n)

	cut := p.Arm(faultproxy.Point{Match: faultproxy.ClientRuns("select 'cut'")})
	_, err := c.Exec(ctx, "select 'cut'")
	require.Error(t, err)
	<-cut
	assert.True(t, c.IsClosed())
	assert.EqualValues(t, 1, p.Cuts())
}

func TestProxyCutsAfterTheServerAnswered(t *testing.T) {
	p, c := connect(t)
	ctx := context.Background()
	_, err := c.Exec(ctx, "create temporary table t (v int)")
	require.NoError(t, err)
	p.Arm(faultproxy.Point{Match: faultproxy.ServerSendsRow(3)})
	rows, err := c.Query(ctx, "select g from generate_series(1, 10) g")
	require.NoError(t, err)
	got := 0
	for rows.Next() {
		got++
	}
	require.Error(t, rows.Err())
	assert.Equal(t, 2, got, "two rows passed, the third was cut")
}
