package provider_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/provider"
)

// fieldCase is one Config key: a value for ConfigFromMap and the field it must set.
type fieldCase struct {
	key   string
	value any
	check func(t *testing.T, c provider.Config)
}

func fieldCases() []fieldCase {
	return []fieldCase{
		{"host", "db.example.com", func(t *testing.T, c provider.Config) { assert.Equal(t, "db.example.com", c.Host) }},
		{"port", 6543, func(t *testing.T, c provider.Config) { assert.Equal(t, 6543, c.Port) }},
		{"user", "app", func(t *testing.T, c provider.Config) { assert.Equal(t, "app", c.User) }},
		{"database", "shop", func(t *testing.T, c provider.Config) { assert.Equal(t, "shop", c.Database) }},
		{"password", "s3cr3t-PA55", func(t *testing.T, c provider.Config) { assert.Equal(t, "s3cr3t-PA55", c.Password) }},
		{"sslmode", "require", func(t *testing.T, c provider.Config) { assert.Equal(t, "require", c.SSLMode) }},
		{"sslrootcert", "testdata/ca.crt", func(t *testing.T, c provider.Config) { assert.Equal(t, "testdata/ca.crt", c.SSLRootCert) }},
		{"sslcert", "testdata/client.crt", func(t *testing.T, c provider.Config) { assert.Equal(t, "testdata/client.crt", c.SSLCert) }},
		{"sslkey", "testdata/client.key", func(t *testing.T, c provider.Config) { assert.Equal(t, "testdata/client.key", c.SSLKey) }},
		{"pool_size", 25, func(t *testing.T, c provider.Config) { assert.Equal(t, 25, c.PoolSize) }},
		{"min_conns", 3, func(t *testing.T, c provider.Config) { assert.Equal(t, 3, c.MinConns) }},
		{"connect_timeout", "7s", func(t *testing.T, c provider.Config) { assert.Equal(t, 7*time.Second, c.ConnectTimeout) }},
		{"acquire_timeout", "1.5s", func(t *testing.T, c provider.Config) { assert.Equal(t, 1500*time.Millisecond, c.AcquireTimeout) }},
		{"health_check_period", "45s", func(t *testing.T, c provider.Config) { assert.Equal(t, 45*time.Second, c.HealthCheckPeriod) }},
		{"max_conn_lifetime", "2h", func(t *testing.T, c provider.Config) { assert.Equal(t, 2*time.Hour, c.MaxConnLifetime) }},
		{"max_conn_idle_time", "10m", func(t *testing.T, c provider.Config) { assert.Equal(t, 10*time.Minute, c.MaxConnIdleTime) }},
		{"idle_validation_threshold", "250ms", func(t *testing.T, c provider.Config) {
			assert.Equal(t, 250*time.Millisecond, c.IdleValidationThreshold)
		}},
		{"application_name", "billing", func(t *testing.T, c provider.Config) { assert.Equal(t, "billing", c.ApplicationName) }},
		{"runtime_params", map[string]any{"search_path": "app,public"}, func(t *testing.T, c provider.Config) {
			assert.Equal(t, map[string]string{"search_path": "app,public"}, c.RuntimeParams)
		}},
		{"conn_params", map[string]any{"target_session_attrs": "read-write", "keepalives_idle": "30"}, func(t *testing.T, c provider.Config) {
			assert.Equal(t, map[string]string{"target_session_attrs": "read-write", "keepalives_idle": "30"}, c.ConnParams)
		}},
		{"connect_retry_timeout", "20s", func(t *testing.T, c provider.Config) { assert.Equal(t, 20*time.Second, c.ConnectRetryTimeout) }},
		// legacy keys
		{"db_host", "legacy.example.com", func(t *testing.T, c provider.Config) { assert.Equal(t, "legacy.example.com", c.Host) }},
		{"db_port", 5433, func(t *testing.T, c provider.Config) { assert.Equal(t, 5433, c.Port) }},
		{"db_role", "legacy_role", func(t *testing.T, c provider.Config) { assert.Equal(t, "legacy_role", c.User) }},
		{"db_name", "legacy_db", func(t *testing.T, c provider.Config) { assert.Equal(t, "legacy_db", c.Database) }},
		{"db_user_pw", "s3cr3t-PA55", func(t *testing.T, c provider.Config) { assert.Equal(t, "s3cr3t-PA55", c.Password) }},
	}
}

// roundTrip checks that c survives String -> ParseConfig and MarshalJSON ->
// ConfigFromMap, the password aside (both print it redacted).
func roundTrip(t *testing.T, c provider.Config) {
	t.Helper()
	want := c
	want.Password = ""

	fromURL, err := provider.ParseConfig(c.String())
	require.NoError(t, err, c.String())
	fromURL.Password = ""
	assert.Equal(t, want, fromURL, "String -> ParseConfig")

	raw, err := json.Marshal(c)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	delete(m, "password")
	fromJSON, err := provider.ConfigFromMap(m)
	require.NoError(t, err, string(raw))
	assert.Equal(t, want, fromJSON, "MarshalJSON -> ConfigFromMap")
}

func TestEveryKeyRoundTrips(t *testing.T) {
	for _, fc := range fieldCases() {
		t.Run(fc.key, func(t *testing.T) {
			m := map[string]any{fc.key: fc.value}
			switch fc.key { // pgx wants a client certificate and its key together
			case "sslcert":
				m["sslkey"] = "testdata/client.key"
			case "sslkey":
				m["sslcert"] = "testdata/client.crt"
			}
			cfg, err := provider.ConfigFromMap(m)
			require.NoError(t, err)
			fc.check(t, cfg)
			roundTrip(t, cfg)
		})
	}
}

func TestAllKeysTogether(t *testing.T) {
	m := map[string]any{}
	for _, fc := range fieldCases() {
		if !strings.HasPrefix(fc.key, "db_") {
			m[fc.key] = fc.value
		}
	}
	cfg, err := provider.ConfigFromMap(m)
	require.NoError(t, err)
	for _, fc := range fieldCases() {
		if !strings.HasPrefix(fc.key, "db_") {
			fc.check(t, cfg)
		}
	}
	roundTrip(t, cfg)

	legacy, err := provider.ConfigFromMap(map[string]any{
		"db_host": "h", "db_port": "5433", "db_role": "r", "db_name": "n", "db_user_pw": "s3cr3t-PA55", "pool_size": 4,
	})
	require.NoError(t, err)
	want := provider.DefaultConfig()
	want.Host, want.Port, want.User, want.Database, want.Password, want.PoolSize = "h", 5433, "r", "n", "s3cr3t-PA55", 4
	assert.Equal(t, want, legacy)
	roundTrip(t, legacy)
}

func TestConfigFromMapNumberForms(t *testing.T) {
	for _, v := range []any{6000, int8(100), int16(6000), int32(6000), int64(6000), uint(6000), uint16(6000), uint64(6000),
		float64(6000), float32(6000), json.Number("6000"), "6000", " 6000 "} {
		cfg, err := provider.ConfigFromMap(map[string]any{"port": v, "pool_size": v})
		if v == int8(100) {
			require.NoError(t, err)
			assert.Equal(t, 100, cfg.Port)
			continue
		}
		require.NoError(t, err, "%T", v)
		assert.Equal(t, 6000, cfg.Port, "%T", v)
		assert.Equal(t, 6000, cfg.PoolSize, "%T", v)
	}
	for v, want := range map[any]time.Duration{
		"90s": 90 * time.Second, "90": 90 * time.Second, 90: 90 * time.Second, int64(90): 90 * time.Second,
		2.5: 2500 * time.Millisecond, json.Number("3"): 3 * time.Second, 4 * time.Minute: 4 * time.Minute,
	} {
		cfg, err := provider.ConfigFromMap(map[string]any{"connect_timeout": v})
		require.NoError(t, err, "%T %v", v, v)
		assert.Equal(t, want, cfg.ConnectTimeout, "%T %v", v, v)
	}
	cfg, err := provider.ConfigFromMap(map[string]any{"runtime_params": map[string]string{"timezone": "UTC"}, "host": nil})
	require.NoError(t, err)
	assert.Equal(t, "UTC", cfg.RuntimeParams["timezone"])
	assert.Equal(t, "localhost", cfg.Host, "a nil value keeps the default")
}

// requireFieldErrors asserts that err is a ValidationErrors naming exactly paths.
func requireFieldErrors(t *testing.T, err error, paths ...string) provider.ValidationErrors {
	t.Helper()
	require.Error(t, err)
	var verrs provider.ValidationErrors
	require.ErrorAs(t, err, &verrs, "%v", err)
	assert.ErrorIs(t, err, provider.ErrInvalidConfig)
	got := make([]string, len(verrs))
	for i, fe := range verrs {
		got[i] = fe.Path
		assert.NotEmpty(t, fe.Message)
		assert.Contains(t, err.Error(), fe.Path+": "+fe.Message)
	}
	assert.ElementsMatch(t, paths, got, "%v", err)
	return verrs
}

func TestBadInputsNameTheirField(t *testing.T) {
	tests := []struct {
		name  string
		parse func() (provider.Config, error)
		path  string
		msg   string
	}{
		{"empty host", mapOf("host", ""), "host", "must not be empty"},
		{"empty legacy host", mapOf("db_host", "  "), "db_host", "must not be empty"},
		{"port 0", mapOf("port", 0), "port", "must be between 1 and 65535"},
		{"port 70000", mapOf("port", 70000), "port", "must be between 1 and 65535"},
		{"legacy port 70000", mapOf("db_port", "70000"), "db_port", "must be between 1 and 65535"},
		{"pool size 0", mapOf("pool_size", 0), "pool_size", "must be between 1 and 10000"},
		{"pool size negative", mapOf("pool_size", -5), "pool_size", "must be between 1 and 10000"},
		{"unknown sslmode", mapOf("sslmode", "sometimes"), "sslmode", "must be one of"},
		{"negative duration", mapOf("acquire_timeout", "-1s"), "acquire_timeout", "must not be negative"},
		{"min_conns above pool_size", mapOf2("min_conns", 20, "pool_size", 5), "min_conns", "must be between 0 and pool_size (5)"},
		{"port of wrong type", mapOf("port", true), "port", "must be an integer (got bool)"},
		{"port not a number", mapOf("db_port", "five"), "db_port", "must be an integer"},
		{"port not whole", mapOf("port", 5432.5), "port", "must be a whole number"},
		{"host of wrong type", mapOf("host", 42), "host", "must be a string (got int)"},
		{"password of wrong type", mapOf("db_user_pw", 12345), "db_user_pw", "must be a string (got int)"},
		{"duration of wrong type", mapOf("connect_timeout", []int{1}), "connect_timeout", "must be a duration"},
		{"runtime params of wrong type", mapOf("runtime_params", "x=y"), "runtime_params", "must be a map"},
		{"reserved runtime param", mapOf("runtime_params", map[string]string{"password": "x"}), "runtime_params.password",
			"set it through the Password field"},
		{"unknown key", mapOf("pool_sise", 3), "pool_sise", "unknown key"},
		{"two names for one field", mapOf2("host", "a", "db_host", "b"), "host", "sets the same field as db_host"},
		{"malformed URL", urlOf("postgres://u@host:5432/db%zz"), "url", "failed to parse as URL"},
		{"URL with bad port", urlOf("postgres://u@host:port/db"), "port", "must be a number"},
		{"URL with port 70000", urlOf("postgres://u@host:70000/db"), "port", "must be between 1 and 65535"},
		{"URL with port 0", urlOf("postgres://u@host:0/db"), "port", "must be between 1 and 65535"},
		{"URL with two hosts, one bad", urlOf("postgres://u@h1:5432,h%20x:5432/db"), "host", "each host must be"},
		{"URL with empty host", urlOf("postgres://u@h/db?host="), "host", "must not be empty"},
		{"URL with unknown scheme", urlOf("mysql://u@h/db"), "url", "unsupported scheme"},
		{"URL with bad pool size", urlOf("postgres://u@h/db?pool_max_conns=0"), "pool_max_conns", "must be between 1 and 10000"},
		{"URL with a keyword pgx lacks", urlOf("postgres://u@h/db?hostaddr=10.0.0.1"), "hostaddr", "not supported"},
		{"URL with a bad target_session_attrs", urlOf("postgres://u@h/db?target_session_attrs=sometimes"), "target_session_attrs",
			"unknown target_session_attrs value"},
		{"bad keepalives", mapOf("conn_params", map[string]any{"keepalives_idle": "soon"}), "conn_params.keepalives_idle", "whole number"},
		{"unknown conn param", mapOf("conn_params", map[string]any{"search_path": "x"}), "conn_params.search_path", "RuntimeParams"},
		{"not a connection string", urlOf("just some words"), "url", "failed to parse as keyword/value"},
		{"keyword without value", urlOf("host=h dbname"), "url", "failed to parse as keyword/value"},
		{"unterminated quote", urlOf("host=h dbname='shop"), "url", "failed to parse as keyword/value"},
		{"keyword/value bad sslmode", urlOf("host=h sslmode=maybe"), "sslmode", "must be one of"},
		{"keyword/value bad timeout", urlOf("host=h connect_timeout=soon"), "connect_timeout", "must be a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.parse()
			verrs := requireFieldErrors(t, err, tt.path)
			assert.Contains(t, verrs[0].Message, tt.msg)
			assert.Equal(t, provider.Config{}, cfg)
		})
	}
}

func mapOf(k string, v any) func() (provider.Config, error) {
	return func() (provider.Config, error) { return provider.ConfigFromMap(map[string]any{k: v}) }
}

func mapOf2(k1 string, v1 any, k2 string, v2 any) func() (provider.Config, error) {
	return func() (provider.Config, error) { return provider.ConfigFromMap(map[string]any{k1: v1, k2: v2}) }
}

func urlOf(s string) func() (provider.Config, error) {
	return func() (provider.Config, error) { return provider.ParseConfig(s) }
}

func TestAllProblemsComeBackTogether(t *testing.T) {
	cfg := provider.Config{
		Host:            "",
		Port:            70000,
		User:            "",
		Database:        "app",
		SSLMode:         "bogus",
		PoolSize:        0,
		MinConns:        -1,
		ConnectTimeout:  -time.Second,
		AcquireTimeout:  -time.Second,
		MaxConnIdleTime: -time.Second,
		RuntimeParams:   map[string]string{"user": "x", "": "y"},
	}
	verrs := requireFieldErrors(t, cfg.Validate(),
		"host", "port", "user", "sslmode", "pool_size", "min_conns", "connect_timeout", "acquire_timeout",
		"max_conn_idle_time", "runtime_params", "runtime_params.user")
	assert.Equal(t, "must be between 1 and 10000", verrs.Field("pool_size").Message)
	var fe *provider.FieldError
	require.ErrorAs(t, cfg.Validate(), &fe)
	assert.Equal(t, "host", fe.Path)

	// From a map, conversion problems and validation problems come back together, named
	// as the map named them.
	_, err := provider.ConfigFromMap(map[string]any{
		"db_host": "", "db_port": 0, "db_role": 7, "pool_size": "many", "sslmode": "x", "bogus": 1,
	})
	requireFieldErrors(t, err, "db_host", "db_port", "db_role", "pool_size", "sslmode", "bogus")

	_, err = provider.ParseConfig("postgres://u@h:70000/db?sslmode=no&pool_size=0&min_conns=x&acquire_timeout=-1s")
	requireFieldErrors(t, err, "port", "sslmode", "pool_size", "min_conns", "acquire_timeout")
}

func TestParseConfigForms(t *testing.T) {
	tests := []struct {
		in   string
		want func(c *provider.Config)
	}{
		{"", func(*provider.Config) {}},
		{"postgres://app:p%40ss@db.example.com:6432/shop?sslmode=require&application_name=billing&pool_size=20", func(c *provider.Config) {
			c.User, c.Password, c.Host, c.Port, c.Database = "app", "p@ss", "db.example.com", 6432, "shop"
			c.SSLMode, c.ApplicationName, c.PoolSize = "require", "billing", 20
		}},
		{"postgresql://app@[::1]:5433/shop", func(c *provider.Config) {
			c.User, c.Host, c.Port, c.Database = "app", "::1", 5433, "shop"
		}},
		{"postgres://app@/shop?host=/var/run/postgresql&port=5434", func(c *provider.Config) {
			c.User, c.Host, c.Port, c.Database = "app", "/var/run/postgresql", 5434, "shop"
		}},
		{"postgres://app@db", func(c *provider.Config) { // the database defaults to the user, as in libpq
			c.User, c.Host, c.Database = "app", "db", "app"
		}},
		{"postgres://db/shop?pool_max_conns=7&pool_min_conns=2&pool_max_conn_lifetime=1h30m&connect_timeout=10&search_path=app", func(c *provider.Config) {
			c.Host, c.Database, c.PoolSize, c.MinConns = "db", "shop", 7, 2
			c.MaxConnLifetime, c.ConnectTimeout = 90*time.Minute, 10*time.Second
			c.RuntimeParams = map[string]string{"search_path": "app"}
		}},
		{"host=db port=6432 user=app password='it\\'s a secret' dbname = shop sslmode=disable application_name='my app'", func(c *provider.Config) {
			c.Host, c.Port, c.User, c.Password, c.Database = "db", 6432, "app", "it's a secret", "shop"
			c.SSLMode, c.ApplicationName = "disable", "my app"
		}},
		{"  host=db\tuser=app statement_timeout=5s  ", func(c *provider.Config) {
			c.Host, c.User, c.Database = "db", "app", "app"
			c.RuntimeParams = map[string]string{"statement_timeout": "5s"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			want := provider.DefaultConfig()
			tt.want(&want)
			got, err := provider.ParseConfig(tt.in)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			roundTrip(t, got)
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, k := range []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSSLMODE", "PGAPPNAME",
		"PGCONNECT_TIMEOUT", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"} {
		t.Setenv(k, "")
	}
	cfg, err := provider.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, provider.DefaultConfig(), cfg, "nothing set: the defaults")

	t.Setenv("PGHOST", "envhost")
	t.Setenv("PGPORT", "6000")
	t.Setenv("PGUSER", "envuser")
	t.Setenv("PGPASSWORD", "s3cr3t-PA55")
	t.Setenv("PGSSLMODE", "verify-full")
	t.Setenv("PGAPPNAME", "envapp")
	t.Setenv("PGCONNECT_TIMEOUT", "12")
	cfg, err = provider.ConfigFromEnv()
	require.NoError(t, err)
	want := provider.DefaultConfig()
	want.Host, want.Port, want.User, want.Database, want.Password = "envhost", 6000, "envuser", "envuser", "s3cr3t-PA55"
	want.SSLMode, want.ApplicationName, want.ConnectTimeout = "verify-full", "envapp", 12*time.Second
	assert.Equal(t, want, cfg)

	t.Setenv("PGDATABASE", "envdb")
	cfg, err = provider.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, "envdb", cfg.Database)

	t.Setenv("PGPORT", "70000")
	t.Setenv("PGSSLMODE", "nope")
	_, err = provider.ConfigFromEnv()
	requireFieldErrors(t, err, "PGPORT", "PGSSLMODE")
	assert.NotContains(t, err.Error(), "s3cr3t-PA55")

	// DATABASE_URL comes first and wins.
	t.Setenv("DATABASE_URL", "postgres://urluser@urlhost:5555/urldb")
	cfg, err = provider.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, "urlhost", cfg.Host)
	assert.Equal(t, 5555, cfg.Port)
	assert.Equal(t, "urldb", cfg.Database)

	t.Setenv("DATABASE_URL", "postgres://u:s3cr3t-PA55@urlhost:99999/db")
	_, err = provider.ConfigFromEnv()
	requireFieldErrors(t, err, "port")
	assert.True(t, strings.HasPrefix(err.Error(), "DATABASE_URL: "), err.Error())
	assert.NotContains(t, err.Error(), "s3cr3t-PA55")
}

func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, provider.DefaultConfig().Validate())
	assert.True(t, errors.Is(provider.ValidationErrors{{Path: "x", Message: "y"}}, provider.ErrInvalidConfig))
}
