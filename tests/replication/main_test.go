package replication_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testCtx returns a context that ends with the test (or after three minutes).
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// quiet is a logger for the parts under test: warnings and errors only, and only with -v.
func quiet(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// topology is a primary and a streaming standby of it, from local binaries, with uno's
// tables and a ledger table of the tests on the primary's postgres database.
type topology struct {
	primary, standby *pgserver.Server
}

func newTopology(t *testing.T, opts ...pgserver.Option) *topology {
	t.Helper()
	ctx := testCtx(t)
	primary := pgtest.LocalServer(t)
	pool, err := pgxpool.New(ctx, primary.URL)
	require.NoError(t, err)
	require.NoError(t, schema.MigratePool(ctx, pool))
	_, err = pool.Exec(ctx, `create table ledger (id text primary key, writer int not null, seq int not null)`)
	require.NoError(t, err)
	pool.Close()
	standby := pgtest.Standby(t, primary, opts...)
	return &topology{primary: primary, standby: standby}
}

// failoverURL names both servers, primary first, and asks for the one that accepts writes.
func (tp *topology) failoverURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
		tp.primary.Port(), tp.standby.Port())
}
