package txmanager

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The Manager is itself a Querier that routes each call by its ctx, to the ctx's
// transaction (see [Manager.Querier]) or else to the pool. Code that takes a
// pgx-shaped querier once, at start-up — sqlc's generated Queries (db.New(tm)), a
// repository struct — joins the transaction of whatever ctx each call is given.
var _ Querier = (*Manager)(nil)

// Exec runs sql on m.Querier(ctx).
func (m *Manager) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return m.Querier(ctx).Exec(ctx, sql, args...)
}

// Query runs sql on m.Querier(ctx). Close the rows before the transaction's next
// statement.
func (m *Manager) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return m.Querier(ctx).Query(ctx, sql, args...)
}

// QueryRow runs sql on m.Querier(ctx).
func (m *Manager) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return m.Querier(ctx).QueryRow(ctx, sql, args...)
}

// SendBatch sends b on m.Querier(ctx).
func (m *Manager) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return m.Querier(ctx).SendBatch(ctx, b)
}

// CopyFrom copies rows into a table on m.Querier(ctx).
func (m *Manager) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	return m.Querier(ctx).CopyFrom(ctx, tableName, columnNames, rowSrc)
}
