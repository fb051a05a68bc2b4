package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestScrapeShowsUnosMetrics runs the example and checks that the scrape has each of
// uno's metrics with the values the run gives them.
func TestScrapeShowsUnosMetrics(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.ConnString(t))
	dbName := "uno_telemetry_example_test"
	t.Cleanup(func() {
		_, err := pgtest.Conn(t).Exec(context.Background(),
			"DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
		assert.NoError(t, err)
	})
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	require.NoError(t, run(context.Background(), &out, logger, dbName))
	got := out.String()
	t.Log("\n" + got)

	assert.Contains(t, got, "GET /metrics: 200 OK")
	for _, want := range []string{
		`uno_tx_scopes_total{otel_scope_name="github.com/uno-framework/uno",otel_scope_schema_url="",otel_scope_version="",uno_tx_kind="savepoint",uno_tx_outcome="rolled_back"} 1`,
		`uno_tx_savepoint_rollbacks_total{otel_scope_name="github.com/uno-framework/uno",otel_scope_schema_url="",otel_scope_version=""} 1`,
		"uno_tx_duration_seconds_bucket",
		"uno_relay_published_total",
		"uno_relay_batch_size_bucket",
		"uno_relay_publish_duration_seconds_bucket",
		"uno_relay_leases",
		"uno_outbox_pending",
		"uno_outbox_oldest_age_seconds",
		"pgxpool_acquired_connections",
		"pgxpool_idle_connections",
		"pgxpool_empty_acquire",
	} {
		assert.Contains(t, got, want)
	}
}
