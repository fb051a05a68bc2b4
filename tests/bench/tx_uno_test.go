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
	return unoTxWith(tb, pool, txmanager.Config{})
}

// unoTxWith is unoTx with the Manager configured by cfg.
func unoTxWith(tb testing.TB, pool *pgxpool.Pool, cfg txmanager.Config) txImpl {
	tb.Helper()
	tm, err := txmanager.New(pool, cfg)
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
