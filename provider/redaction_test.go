package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/provider"
)

// printed returns every way a value is commonly turned into text.
func printed(v any) map[string]string {
	out := map[string]string{}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T %v"} {
		out[f] = fmt.Sprintf(f, v)
	}
	out["Sprint"] = fmt.Sprint(v)
	out["Sprintln"] = fmt.Sprintln(v)
	return out
}

func TestPasswordNeverPrinted(t *testing.T) {
	cfg := provider.DefaultConfig()
	cfg.User, cfg.Database, cfg.Password = "app", "shop", secret

	type wrapper struct {
		Name   string
		Config provider.Config
		Ptr    *provider.Config
	}
	for name, v := range map[string]any{
		"value":   cfg,
		"pointer": &cfg,
		"nested":  wrapper{"w", cfg, &cfg},
		"slice":   []provider.Config{cfg},
		"map":     map[string]provider.Config{"db": cfg},
	} {
		for format, s := range printed(v) {
			assert.NotContains(t, s, secret, "%s printed with %s: %s", name, format, s)
		}
	}
	assert.Contains(t, cfg.String(), "app:xxxxx@localhost:5432/shop")
	assert.Contains(t, fmt.Sprintf("%+v", cfg), "Password:xxxxx")
	assert.Contains(t, fmt.Sprintf("%#v", cfg), `provider.Config{Host:"localhost"`)
	assert.Contains(t, cfg.GoString(), `Password:"xxxxx"`)

	raw, err := json.Marshal(wrapper{"w", cfg, &cfg})
	require.NoError(t, err)
	assert.NotContains(t, string(raw), secret)

	logger, logs := newLogger()
	logger.Info("config", "config", cfg, "ptr", &cfg)
	logger.Info("config as any", "config", any(cfg))
	assert.NotContains(t, logs.String(), secret)
	assert.Contains(t, logs.String(), "xxxxx")
}

func TestPasswordNeverInErrors(t *testing.T) {
	inputs := []func() (provider.Config, error){
		urlOf("postgres://u:" + secret + "@host:70000/db"),
		urlOf("postgres://u:" + secret + "@host:70000x/db"),
		urlOf("postgres://u:" + secret + "@ho st/db"),
		urlOf("postgres://u:" + secret + "@h1,h2:x/db"),
		urlOf("postgres://u:" + secret + "@host/db?pool_size=%zz"),
		urlOf("postgres://u:" + secret + "@host/db?sslmode=" + secret),
		urlOf("postgres://u:" + secret + "@host/db?pool_size=" + secret),
		urlOf("postgres://u@host/db?password=" + secret + "&port=0"),
		urlOf("mysql://u:" + secret + "@host/db"),
		urlOf("host=h password=" + secret + " port=abc"),
		urlOf("host=h password='" + secret),
		urlOf("host=h password=" + secret + " dbname"),
		urlOf(secret),
		mapOf2("password", secret, "port", "x"),
		mapOf2("db_user_pw", secret, "sslmode", secret),
		mapOf2("db_user_pw", secret, "db_port", secret),
		mapOf2("password", secret, "application_name", secret+"\x00"),
	}
	for i, parse := range inputs {
		_, err := parse()
		require.Error(t, err, "input %d", i)
		for format, s := range printed(err) {
			assert.NotContains(t, s, secret, "input %d, %s: %s", i, format, s)
		}
	}

	cfg := provider.Config{Password: secret, Host: secret, SSLMode: secret}
	err := cfg.Validate()
	require.Error(t, err)
	// Validate never echoes the password; other fields may hold any text, so it is only
	// checked that the password itself is not the reason a message mentions it.
	var verrs provider.ValidationErrors
	require.ErrorAs(t, err, &verrs)
	assert.Nil(t, verrs.Field("password"))
}

func TestFailedConnectHidesPassword(t *testing.T) {
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	cfg := provider.DefaultConfig()
	cfg.Host, cfg.Port, cfg.User, cfg.Database, cfg.Password = "127.0.0.1", port, "someone", "somedb", secret
	cfg.SSLMode = provider.SSLModeDisable
	logger, logs := newLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()

	p, err := provider.New(ctx, cfg, provider.WithLogger(logger), provider.WithBackoff(fastBackOff))
	require.Error(t, err)
	require.Nil(t, p)
	for format, s := range printed(err) {
		assert.NotContains(t, s, secret, format)
	}
	var ce *pool.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.NotContains(t, ce.Err.Error(), secret)
	assert.NotContains(t, logs.String(), secret)
	assert.Contains(t, logs.String(), "cannot connect")
}
