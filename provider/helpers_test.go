package provider_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/logcapture"
	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/tests/pgtest"
)

const secret = "s3cr3t-PA55"

// newLogger returns a logger writing text and JSON lines, at every level, to one buffer.
func newLogger() (*slog.Logger, *logcapture.Buffer) {
	b := &logcapture.Buffer{}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	return slog.New(teeHandler{slog.NewTextHandler(b, opts), slog.NewJSONHandler(b, opts)}), b
}

type teeHandler [2]slog.Handler

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool { return h[0].Enabled(ctx, l) }

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if err := h[0].Handle(ctx, r.Clone()); err != nil {
		return err
	}
	return h[1].Handle(ctx, r)
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h[0].WithAttrs(as), h[1].WithAttrs(as)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h[0].WithGroup(name), h[1].WithGroup(name)}
}

// notifyHandler signals when a record whose message contains a text is logged.
type notifyHandler struct {
	slog.Handler
	text string
	ch   chan struct{}
}

func (h notifyHandler) Handle(ctx context.Context, r slog.Record) error {
	if bytes.Contains([]byte(r.Message), []byte(h.text)) {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

// testConfig is the package database's config, with the distinctive password (the
// test server trusts local connections and ignores it).
func testConfig(t *testing.T) provider.Config {
	t.Helper()
	cfg, err := provider.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	cfg.Password = secret
	cfg.PoolSize = 4
	return cfg
}

// newProvider connects with cfg; at cleanup it checks that no connection is still
// acquired, then closes the provider.
func newProvider(t *testing.T, cfg provider.Config, opts ...provider.Option) *provider.Provider {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := provider.New(ctx, cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		pgtest.RequireNoAcquired(t, p.Pool())
		p.Close()
	})
	return p
}

func fastBackOff() backoff.BackOff { return backoff.NewConstantBackOff(20 * time.Millisecond) }

// states records the transitions reported to the health callback.
type states chan pool.State

func (s states) callback(st pool.State) { s <- st }

func (s states) waitFor(t *testing.T, want pool.State) {
	t.Helper()
	for {
		select {
		case st := <-s:
			if st == want {
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("state %s never reported", want)
		}
	}
}
