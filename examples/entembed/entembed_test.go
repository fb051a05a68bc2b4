package entembed_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/entembed"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestOneMigrationCreatesUnoTables runs the application's ent migration, which embeds
// uno's schema types, and checks that uno's tables are exactly what schema.Migrate
// wants (it finds nothing to change) and that the outbox works on them.
func TestOneMigrationCreatesUnoTables(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, entembed.Migrate(ctx, db))

	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"orders", "uno_dead_letters", "uno_inbox", "uno_outbox", "uno_outbox_leases", "uno_outbox_relays"}, names)

	var pk string
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'uno_outbox'::regclass AND contype = 'p'`).Scan(&pk))
	assert.Equal(t, "PRIMARY KEY (partition, id)", pk)

	var logs bytes.Buffer
	require.NoError(t, schema.MigratePool(ctx, pool, schema.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))))
	assert.Contains(t, logs.String(), "changes=0", "uno's Migrate must find its tables as it wants them")

	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	outbox := events.NewOutbox(events.OutboxConfig{})
	require.NoError(t, tm.Do(ctx, func(ctx context.Context) error {
		if _, err := tm.Querier(ctx).Exec(ctx, `INSERT INTO orders (item, quantity) VALUES ('tea', 2)`); err != nil {
			return err
		}
		return outbox.Emit(ctx, events.New("order.placed", map[string]any{"item": "tea"}, events.WithKey("tea")))
	}))
	lag, err := events.ReadLag(ctx, pool)
	require.NoError(t, err)
	assert.EqualValues(t, 1, lag.Pending, "the committed event waits in the outbox")
}
