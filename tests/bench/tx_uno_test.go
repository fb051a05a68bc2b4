package bench

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/txmanager"
)

// unoTx is uno's txmanager with its default configuration: Do, and Do with Nested() for
// the nested scope; statements run through Querier(ctx).
func unoTx(tb testing.TB, pool *pgxpool.Pool) txImpl {
	tb.Helper()
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		tb.Fatalf("txmanager.New: %v", err)
	}
	return txImpl{
		name: "uno",
		oneInsert: func(ctx context.Context) error {
			return tm.Do(ctx, func(ctx context.Context) error {
				_, err := tm.Querier(ctx).Exec(ctx, txInsertSQL, 1, "x")
				return err
			})
		},
		nested: func(ctx context.Context) error {
			return tm.Do(ctx, func(ctx context.Context) error {
				if _, err := tm.Querier(ctx).Exec(ctx, txInsertSQL, 1, "x"); err != nil {
					return err
				}
				return tm.Do(ctx, func(ctx context.Context) error {
					_, err := tm.Querier(ctx).Exec(ctx, txInsertSQL, 2, "y")
					return err
				}, txmanager.Nested())
			})
		},
	}
}
