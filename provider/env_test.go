package provider_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/provider"
)

// TestOnlyConfigFromEnvReadsTheEnvironment: a Config means what its fields say, whatever
// PG* variables are set; ConfigFromEnv reads them all.
func TestOnlyConfigFromEnvReadsTheEnvironment(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("PGPASSWORD", "from-the-environment")
	t.Setenv("PGSSLMODE", "require")
	t.Setenv("PGTARGETSESSIONATTRS", "read-only")
	t.Setenv("PGTZ", "Asia/Tokyo")
	t.Setenv("PGAPPNAME", "env-app")

	cfg, err := provider.ParseConfig("postgres://app@db/shop")
	require.NoError(t, err)
	assert.Empty(t, cfg.Password)
	assert.Equal(t, provider.SSLModePrefer, cfg.SSLMode)
	pc, err := cfg.PgxPoolConfig()
	require.NoError(t, err)
	assert.Empty(t, pc.ConnConfig.Password, "PGPASSWORD stays out")
	assert.Nil(t, pc.ConnConfig.ValidateConnect, "PGTARGETSESSIONATTRS stays out")
	assert.Equal(t, map[string]string{"application_name": "uno"}, pc.ConnConfig.RuntimeParams, "PGTZ and PGAPPNAME stay out")
	assert.NotNil(t, pc.ConnConfig.Fallbacks, "sslmode prefer: TLS, then plain")

	fromEnv, err := provider.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, "from-the-environment", fromEnv.Password)
	assert.Equal(t, provider.SSLModeRequire, fromEnv.SSLMode)
	assert.Equal(t, "read-only", fromEnv.ConnParams["target_session_attrs"])
	assert.Equal(t, "Asia/Tokyo", fromEnv.RuntimeParams["timezone"])
	assert.Equal(t, "env-app", fromEnv.ApplicationName)
}

// testPassfileAndService logs in as login_test (password right-password) on srv with
// the password from a passfile, then with every setting from a service file.
func testPassfileAndService(t *testing.T, srv *pgserver.Server) {
	dir := t.TempDir()
	passfile := filepath.Join(dir, "pgpass")
	require.NoError(t, os.WriteFile(passfile, []byte(fmt.Sprintf("%s:%d:*:login_test:right-password\n", srv.Host(), srv.Port())), 0o600))
	cfg, err := provider.ParseConfig(fmt.Sprintf("postgres://login_test@%s:%d/postgres?sslmode=disable&passfile=%s",
		srv.Host(), srv.Port(), passfile))
	require.NoError(t, err)
	assert.Empty(t, cfg.Password)
	p := newProvider(t, cfg)
	var user string
	require.NoError(t, p.Pool().QueryRow(context.Background(), "SELECT current_user").Scan(&user))
	assert.Equal(t, "login_test", user)

	servicefile := filepath.Join(dir, "pg_service.conf")
	require.NoError(t, os.WriteFile(servicefile, []byte(fmt.Sprintf(
		"[uno_test]\nhost=%s\nport=%d\nuser=login_test\ndbname=postgres\nsslmode=disable\npassword=right-password\n",
		srv.Host(), srv.Port())), 0o600))
	cfg, err = provider.ParseConfig("service=uno_test servicefile=" + servicefile)
	require.NoError(t, err)
	assert.Empty(t, cfg.Host, "the service file supplies the host")
	assert.Empty(t, cfg.SSLMode, "and the sslmode")
	p = newProvider(t, cfg)
	require.NoError(t, p.Pool().QueryRow(context.Background(), "SELECT current_user").Scan(&user))
	assert.Equal(t, "login_test", user)
}
