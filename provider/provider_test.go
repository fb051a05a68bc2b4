package provider_test

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestNewServesThePool(t *testing.T) {
	ctx := context.Background()
	logger, logs := newLogger()
	cfg := testConfig(t)
	cfg.ApplicationName = "uno-provider-test"
	p := newProvider(t, cfg, provider.WithLogger(logger))

	var app string
	require.NoError(t, p.Pool().QueryRow(ctx, "SELECT current_setting('application_name')").Scan(&app))
	assert.Equal(t, "uno-provider-test", app)

	var db string
	require.NoError(t, p.Pool().QueryRow(ctx, "SELECT current_database()").Scan(&db))
	assert.Equal(t, cfg.Database, db)
	assert.Equal(t, int32(cfg.PoolSize), p.Pool().Stat().MaxConns())
	assert.Same(t, p.Pool(), p.ConnPool().Pgx())
	assert.Equal(t, cfg, p.Config())
	assert.NotNil(t, p.Logger())

	assert.Contains(t, logs.String(), "provider: connected to PostgreSQL")
	assert.NotContains(t, logs.String(), secret)
	for _, f := range []string{"%v", "%+v", "%#v"} {
		assert.NotContains(t, fmt.Sprintf(f, p), secret)
	}
}

func TestHealth(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	p := newProvider(t, cfg, provider.WithLogger(slog.New(slog.DiscardHandler)))

	r, err := p.Health(ctx)
	require.NoError(t, err)
	assert.True(t, r.Reachable)
	assert.Positive(t, r.Latency)
	assert.Regexp(t, `^\d+`, r.ServerVersion)
	assert.False(t, r.InRecovery)
	assert.Equal(t, pool.StateHealthy, r.State)
	assert.Equal(t, int32(cfg.PoolSize), r.Pool.MaxConns)
	assert.False(t, r.CheckedAt.IsZero())
	require.NoError(t, p.HealthCheck(ctx))
	assert.Equal(t, pool.StateHealthy, p.Stats().State)
}

func TestNewFailsWithinDeadlineWhenNothingListens(t *testing.T) {
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	cfg := provider.DefaultConfig()
	cfg.Host, cfg.Port, cfg.User, cfg.Database, cfg.Password = "127.0.0.1", port, "app", "shop", secret
	cfg.SSLMode = provider.SSLModeDisable
	logger, logs := newLogger()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	type result struct {
		p   *provider.Provider
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := provider.New(ctx, cfg, provider.WithLogger(logger))
		done <- result{p, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("New did not return after its context ended")
	}
	require.Error(t, res.err)
	assert.Nil(t, res.p)

	var ce *pool.ConnectError
	require.ErrorAs(t, res.err, &ce)
	assert.Equal(t, "127.0.0.1:"+strconv.Itoa(port), ce.Host)
	assert.Equal(t, "shop", ce.Database)
	assert.GreaterOrEqual(t, ce.Attempts, 2, "New retries")
	msg := res.err.Error()
	assert.Contains(t, msg, "127.0.0.1:"+strconv.Itoa(port))
	assert.Contains(t, msg, `database "shop"`)
	assert.Contains(t, msg, "connect") // the cause: connection refused
	assert.NotContains(t, msg, secret)
	assert.NotErrorIs(t, res.err, context.DeadlineExceeded, "the cause is the refused connection, not the deadline")
	assert.Contains(t, logs.String(), "retrying")
	assert.NotContains(t, logs.String(), secret)
}

func TestNewWaitsForTheServerToComeUp(t *testing.T) {
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	cfg := provider.DefaultConfig()
	cfg.Host, cfg.Port, cfg.SSLMode, cfg.Password = "127.0.0.1", port, provider.SSLModeDisable, secret
	retried := make(chan struct{}, 1)
	logger := slog.New(notifyHandler{slog.NewTextHandler(&logcapture.Buffer{}, nil), "retrying", retried})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type result struct {
		p   *provider.Provider
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := provider.New(ctx, cfg, provider.WithLogger(logger), provider.WithBackoff(fastBackOff))
		done <- result{p, err}
	}()

	// New has tried and failed at least once before the server exists.
	select {
	case <-retried:
	case res := <-done:
		t.Fatalf("New returned before any server existed: %v", res.err)
	}
	srv := pgtest.LocalServer(t, pgserver.WithPort(port))
	res := <-done
	require.NoError(t, res.err)
	defer res.p.Close()
	require.NoError(t, res.p.HealthCheck(ctx))
	_ = srv
}

func TestHealthMonitorReportsOutageAndRecovery(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.LocalServer(t)
	cfg, err := provider.ParseConfig(srv.URL)
	require.NoError(t, err)
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	cfg.AcquireTimeout = time.Second
	ch := make(states, 100)
	logger, logs := newLogger()
	p := newProvider(t, cfg, provider.WithLogger(logger), provider.WithHealthCallback(ch.callback), provider.WithBackoff(fastBackOff))
	require.NoError(t, p.HealthCheck(ctx))

	require.NoError(t, srv.Stop(ctx))
	ch.waitFor(t, pool.StateUnhealthy)
	err = p.HealthCheck(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "health check of PostgreSQL at 127.0.0.1:")
	r, err := p.Health(ctx)
	require.Error(t, err)
	assert.False(t, r.Reachable)

	require.NoError(t, srv.Start(ctx))
	ch.waitFor(t, pool.StateHealthy)
	require.NoError(t, p.HealthCheck(ctx))
	assert.Contains(t, logs.String(), "pool: unhealthy")
	assert.Contains(t, logs.String(), "pool: healthy")
}

func TestExhaustedPoolGivesTimeoutError(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.PoolSize = 1
	cfg.AcquireTimeout = 200 * time.Millisecond
	p := newProvider(t, cfg, provider.WithLogger(slog.New(slog.DiscardHandler)))

	held, err := p.ConnPool().Acquire(ctx)
	require.NoError(t, err)
	_, err = p.ConnPool().Acquire(ctx)
	assert.ErrorIs(t, err, pool.ErrAcquireTimeout)
	_, err = p.Pool().Exec(ctx, "SELECT 1")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	err = p.HealthCheck(ctx)
	assert.ErrorIs(t, err, pool.ErrAcquireTimeout)
	held.Release()
	require.NoError(t, p.HealthCheck(ctx))
}

func TestAdminHandlesAnyDatabaseName(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t, testConfig(t), provider.WithLogger(slog.New(slog.DiscardHandler)))
	admin := p.Admin()
	name := fmt.Sprintf(`uno "quoted" db x'%d`, time.Now().UnixNano()%1e9)

	exists, err := admin.DatabaseExists(ctx, name)
	require.NoError(t, err)
	require.False(t, exists)

	require.NoError(t, admin.CreateDatabase(ctx, name))
	t.Cleanup(func() {
		_ = admin.DropDatabase(context.Background(), name, provider.DropIfExists(), provider.DropForce())
	})
	exists, err = admin.DatabaseExists(ctx, name)
	require.NoError(t, err)
	assert.True(t, exists)
	assert.ErrorIs(t, admin.CreateDatabase(ctx, name), provider.ErrDatabaseExists)

	// The database is usable under its exact name.
	cfg := testConfig(t)
	cfg.Database = name
	other := newProvider(t, cfg, provider.WithLogger(slog.New(slog.DiscardHandler)))
	var current string
	require.NoError(t, other.Pool().QueryRow(ctx, "SELECT current_database()").Scan(&current))
	assert.Equal(t, name, current)

	// Its open session does not stop a forced drop.
	require.NoError(t, admin.DropDatabase(ctx, name, provider.DropForce()))
	exists, err = admin.DatabaseExists(ctx, name)
	require.NoError(t, err)
	assert.False(t, exists)
	assert.ErrorIs(t, admin.DropDatabase(ctx, name), provider.ErrDatabaseNotFound)
	require.NoError(t, admin.DropDatabase(ctx, name, provider.DropIfExists()))

	// A copy from a template, owned by the current user.
	tmpl := name + " copy"
	require.NoError(t, admin.CreateDatabase(ctx, tmpl, provider.CreateWithTemplate("template0"), provider.CreateWithOwner(cfg.User)))
	require.NoError(t, admin.DropDatabase(ctx, tmpl))

	for _, bad := range []string{"", strings.Repeat("x", 64), "a\x00b"} {
		assert.Error(t, admin.CreateDatabase(ctx, bad))
		assert.Error(t, admin.DropDatabase(ctx, bad))
	}
}

func TestNewRejectsInvalidConfigWithoutConnecting(t *testing.T) {
	cfg := provider.DefaultConfig()
	cfg.Port, cfg.PoolSize, cfg.Password = 0, 0, secret
	p, err := provider.New(context.Background(), cfg)
	assert.Nil(t, p)
	requireFieldErrors(t, err, "port", "pool_size")
}

func TestCloseIsIdempotentAndClosesEverything(t *testing.T) {
	ctx := context.Background()
	p, err := provider.New(ctx, testConfig(t), provider.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	require.NoError(t, p.HealthCheck(ctx))
	p.Close()
	p.Close()
	_, err = p.ConnPool().Acquire(ctx)
	assert.ErrorIs(t, err, pool.ErrClosed)
	assert.Error(t, p.HealthCheck(ctx))
}

func TestPgxConfigOption(t *testing.T) {
	ctx := context.Background()
	called := false
	p := newProvider(t, testConfig(t), provider.WithLogger(slog.New(slog.DiscardHandler)),
		provider.WithPgxConfig(func(c *pgxpool.Config) {
			called = true
			c.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
				_, err := conn.Exec(ctx, "SET search_path TO pg_catalog")
				return err
			}
		}))
	assert.True(t, called)
	var sp string
	require.NoError(t, p.Pool().QueryRow(ctx, "SHOW search_path").Scan(&sp))
	assert.Equal(t, "pg_catalog", sp)
}

func TestPgxPoolConfigKeepsPasswordOutOfConnString(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConnIdleTime = 0
	cfg.RuntimeParams = map[string]string{"search_path": "app"}
	pc, err := cfg.PgxPoolConfig()
	require.NoError(t, err)
	assert.Equal(t, secret, pc.ConnConfig.Password)
	assert.NotContains(t, pc.ConnString(), secret)
	assert.Equal(t, "app", pc.ConnConfig.RuntimeParams["search_path"])
	assert.Equal(t, "uno", pc.ConnConfig.RuntimeParams["application_name"])
	assert.Equal(t, int32(cfg.PoolSize), pc.MaxConns)
	assert.Greater(t, pc.MaxConnIdleTime, 24*time.Hour, "zero means no idle limit")

	cfg.Port = 0
	_, err = cfg.PgxPoolConfig()
	assert.True(t, errors.Is(err, provider.ErrInvalidConfig))
}

func TestNewDoesNotRetryAMissingDatabase(t *testing.T) {
	cfg := testConfig(t)
	cfg.Database = "uno_no_such_database"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := provider.New(ctx, cfg, provider.WithLogger(slog.New(slog.DiscardHandler)))
	var ce *pool.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 1, ce.Attempts)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "the server's error is reachable")
	assert.Equal(t, "3D000", pgErr.Code)
	assert.NoError(t, ctx.Err(), "New gave up at once")
}

// The provider knows nothing of transactions: it must not depend on the transaction
// manager (which is built on its pool), directly or through another package.
func TestProviderDoesNotDependOnTheTransactionManager(t *testing.T) {
	const module = "github.com/uno-framework/uno/"
	seen := map[string]bool{}
	var visit func(path string)
	visit = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		pkg, err := build.Import(path, ".", 0)
		require.NoError(t, err)
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) {
				require.NotEqual(t, module+"txmanager", imp, "%s imports the transaction manager", path)
				visit(imp)
			}
		}
	}
	visit(module + "provider")
}

// The provider's TransactionManager interface is the shape of txmanager.Manager.
var _ provider.TransactionManager[txmanager.Option] = (*txmanager.Manager)(nil)
