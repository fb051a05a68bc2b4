package compat_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/compat"
	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const secret = "s3cr3t-PA55"

// legacyConfig is the package database as a legacy ConnectionConfig.
func legacyConfig(t *testing.T) compat.ConnectionConfig {
	t.Helper()
	cfg, err := provider.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	return compat.ConnectionConfig{
		DBHost:   cfg.Host,
		DBPort:   cfg.Port,
		DBRole:   cfg.User,
		DBName:   cfg.Database,
		DBUserPw: secret, // the test server trusts local connections
		PoolSize: 3,
	}
}

// TestLegacyCodeStillWorks is code written against the legacy API, unchanged.
func TestLegacyCodeStillWorks(t *testing.T) {
	ctx := context.Background()
	logs := &logcapture.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	cfg := legacyConfig(t) // no sslmode in legacy configs: the default, prefer, applies

	db, err := compat.NewUnoDatabaseProvider(ctx, cfg, provider.WithLogger(logger))
	require.NoError(t, err)
	defer db.Close()

	var n int
	require.NoError(t, db.Pool().QueryRow(ctx, "SELECT 1").Scan(&n))
	require.NoError(t, db.DB().QueryRowContext(ctx, "SELECT 2").Scan(&n))
	assert.Equal(t, 2, n)
	require.NoError(t, db.Querier(ctx).QueryRow(ctx, "SELECT 3").Scan(&n))
	assert.Equal(t, 3, n)
	require.NoError(t, db.HealthCheck(ctx))
	report, err := db.Health(ctx)
	require.NoError(t, err)
	assert.True(t, report.Reachable)
	assert.Equal(t, int32(3), report.Pool.MaxConns)
	assert.Same(t, db.Pool(), db.Provider().Pool())

	mgr := compat.NewUnoDBManager(db)
	name := fmt.Sprintf("uno legacy 'db' %d", time.Now().UnixNano()%1e9)
	require.NoError(t, mgr.CreateDatabase(ctx, name))
	exists, err := mgr.DatabaseExists(ctx, name)
	require.NoError(t, err)
	assert.True(t, exists)
	require.NoError(t, mgr.DropDatabase(ctx, name))
	exists, err = mgr.DatabaseExists(ctx, name)
	require.NoError(t, err)
	assert.False(t, exists)
	assert.NotNil(t, db.Admin())

	pgtest.RequireNoAcquired(t, db.Pool())
	db.Close()

	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "UnoDatabaseProvider and ConnectionConfig are deprecated"), out)
	assert.Equal(t, 1, strings.Count(out, "UnoDBManager is deprecated"), out)
	assert.Contains(t, out, "use_instead=")
	assert.NotContains(t, out, secret)
}

func TestEachLegacyValueWarnsOnce(t *testing.T) {
	ctx := context.Background()
	logs := &logcapture.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	for range 2 {
		db, err := compat.NewUnoDatabaseProvider(ctx, legacyConfig(t), provider.WithLogger(logger))
		require.NoError(t, err)
		for range 3 {
			require.NoError(t, db.HealthCheck(ctx))
		}
		db.Close()
	}
	assert.Equal(t, 2, strings.Count(logs.String(), "UnoDatabaseProvider and ConnectionConfig are deprecated"))
}

func TestLegacyConfigForwardsToProviderConfig(t *testing.T) {
	legacy := map[string]any{
		"db_host": "legacy.example.com", "db_port": 5433, "db_role": "app", "db_name": "shop",
		"db_user_pw": secret, "pool_size": 7,
	}
	cc, err := compat.ConnectionConfigFromMap(legacy)
	require.NoError(t, err)
	assert.Equal(t, compat.ConnectionConfig{
		DBHost: "legacy.example.com", DBPort: 5433, DBRole: "app", DBName: "shop", DBUserPw: secret, PoolSize: 7,
	}, cc)

	fromMap, err := provider.ConfigFromMap(legacy)
	require.NoError(t, err)
	assert.Equal(t, fromMap, cc.Config(), "both paths give the same provider.Config")

	// Zero legacy fields take the defaults.
	assert.Equal(t, provider.DefaultConfig(), compat.ConnectionConfig{}.Config())

	_, err = compat.ConnectionConfigFromMap(map[string]any{"db_port": "x", "db_user_pw": secret})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "db_port")
	assert.NotContains(t, err.Error(), secret)
}

func TestLegacyConfigHidesPassword(t *testing.T) {
	cc := compat.ConnectionConfig{DBHost: "h", DBPort: 5432, DBRole: "r", DBName: "d", DBUserPw: secret, PoolSize: 2}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		s := fmt.Sprintf(f, cc)
		assert.NotContains(t, s, secret, f)
		assert.Contains(t, s, "xxxxx", f)
	}
	assert.NotContains(t, fmt.Sprintf("%+v", struct{ C compat.ConnectionConfig }{cc}), secret)
	logs := &logcapture.Buffer{}
	slog.New(slog.NewJSONHandler(logs, nil)).Info("legacy", "config", cc)
	assert.NotContains(t, logs.String(), secret)
	assert.Contains(t, logs.String(), `"host":"h"`)
}

func TestLegacyProviderReportsConnectErrors(t *testing.T) {
	cfg := legacyConfig(t)
	cfg.DBPort = 70000
	_, err := compat.NewUnoDatabaseProvider(context.Background(), cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "port: must be between 1 and 65535")
	assert.NotContains(t, err.Error(), secret)
}
