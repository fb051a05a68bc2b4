package bench

import (
	"context"
	"testing"

	trmpgx "github.com/avito-tech/go-transaction-manager/drivers/pgxv5/v2"
	"github.com/avito-tech/go-transaction-manager/trm/v2"
	"github.com/avito-tech/go-transaction-manager/trm/v2/manager"
	"github.com/avito-tech/go-transaction-manager/trm/v2/settings"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The statements every implementation runs: the same text, the same arguments.
const (
	txTable     = "bench_tx"
	txCreateSQL = `CREATE TABLE IF NOT EXISTS bench_tx (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		v  bigint NOT NULL,
		s  text   NOT NULL
	)`
	txInsertSQL = "INSERT INTO bench_tx (v, s) VALUES ($1, $2)"
)

// txImpl is one way to run the benchmarked transactions.
type txImpl struct {
	name string
	// oneInsert runs one transaction with one INSERT.
	oneInsert func(ctx context.Context) error
	// nested runs one transaction with one INSERT and a nested (savepoint) scope with one INSERT.
	nested func(ctx context.Context) error
}

// txImpls returns the implementations compared by BenchmarkTx, all on pool.
func txImpls(tb testing.TB, pool *pgxpool.Pool) []txImpl {
	tb.Helper()
	return []txImpl{pgxBeginFunc(pool), pgxBatch(pool), trmPgx(pool), unoTx(tb, pool)}
}

// BenchmarkTx compares one transaction of uno's txmanager with hand-written pgx and
// go-transaction-manager, same statements, same pool, same context.
//
// Sub-benchmark names are key=value (case=..., impl=...), so that
// `benchstat -col /impl` puts the implementations side by side.
func BenchmarkTx(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	// A cancellable context, as a request handler has: pgx and the managers watch it.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	impls := txImpls(b, pool)

	b.Run("case=OneInsert", func(b *testing.B) {
		for _, impl := range impls {
			b.Run("impl="+impl.name, func(b *testing.B) {
				execOrFatal(b, pool, "TRUNCATE "+txTable)
				b.ReportAllocs()
				b.ResetTimer()
				cpu := measureCPU(b)
				for b.Loop() {
					if err := impl.oneInsert(ctx); err != nil {
						b.Fatal(err)
					}
				}
				cpu()
				b.StopTimer()
				if got := countRows(b, pool, txTable); got != b.N {
					b.Fatalf("%d rows committed, want %d (one per transaction)", got, b.N)
				}
			})
		}
	})

	b.Run("case=Nested", func(b *testing.B) {
		for _, impl := range impls {
			b.Run("impl="+impl.name, func(b *testing.B) {
				execOrFatal(b, pool, "TRUNCATE "+txTable)
				b.ReportAllocs()
				b.ResetTimer()
				cpu := measureCPU(b)
				for b.Loop() {
					if err := impl.nested(ctx); err != nil {
						b.Fatal(err)
					}
				}
				cpu()
				b.StopTimer()
				if got := countRows(b, pool, txTable); got != 2*b.N {
					b.Fatalf("%d rows committed, want %d (two per transaction)", got, 2*b.N)
				}
			})
		}
	})

	b.Run("case=Parallel16", func(b *testing.B) {
		for _, impl := range impls {
			b.Run("impl="+impl.name, func(b *testing.B) {
				execOrFatal(b, pool, "TRUNCATE "+txTable)
				b.ReportAllocs()
				b.SetParallelism(parallelism(parallelGoroutines))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := impl.oneInsert(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				if got := countRows(b, pool, txTable); got != b.N {
					b.Fatalf("%d rows committed, want %d (one per transaction)", got, b.N)
				}
			})
		}
	})
}

// pgxBeginFunc is hand-written pgx: pgx.BeginFunc, and tx.Begin (SAVEPOINT/RELEASE) for
// the nested scope. BEGIN, each statement, SAVEPOINT, RELEASE and COMMIT are each a round trip.
func pgxBeginFunc(pool *pgxpool.Pool) txImpl {
	return txImpl{
		name: "pgx-BeginFunc",
		oneInsert: func(ctx context.Context) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, txInsertSQL, 1, "x")
				return err
			})
		},
		nested: func(ctx context.Context) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, txInsertSQL, 1, "x"); err != nil {
					return err
				}
				return pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
					_, err := sp.Exec(ctx, txInsertSQL, 2, "y")
					return err
				})
			})
		},
	}
}

// pgxBatch is hand-written pgx with the fewest round trips, the floor uno aims at (a
// reference beside the peer baselines): BEGIN queued with the first
// statement (pgx Batch.BeginTx), SAVEPOINT queued with the nested scope's statement, no
// RELEASE before COMMIT.
func pgxBatch(pool *pgxpool.Pool) txImpl {
	return txImpl{
		name: "pgx-batch",
		oneInsert: func(ctx context.Context) error {
			var batch pgx.Batch
			batch.BeginTx(pgx.TxOptions{})
			batch.Queue(txInsertSQL, 1, "x")
			br := pool.SendBatch(ctx, &batch)
			tx := br.Tx()
			defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
			if err := br.Close(); err != nil {
				return err
			}
			return tx.Commit(ctx)
		},
		nested: func(ctx context.Context) error {
			var batch pgx.Batch
			batch.BeginTx(pgx.TxOptions{})
			batch.Queue(txInsertSQL, 1, "x")
			br := pool.SendBatch(ctx, &batch)
			tx := br.Tx()
			defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
			if err := br.Close(); err != nil {
				return err
			}
			var scope pgx.Batch
			scope.Queue("SAVEPOINT sp_1")
			scope.Queue(txInsertSQL, 2, "y")
			if err := tx.SendBatch(ctx, &scope).Close(); err != nil {
				return err
			}
			return tx.Commit(ctx)
		},
	}
}

// trmPgx is github.com/avito-tech/go-transaction-manager v2 with its pgxv5 driver; the
// nested scope uses its PropagationNested (a pgx savepoint).
func trmPgx(pool *pgxpool.Pool) txImpl {
	m := manager.Must(trmpgx.NewDefaultFactory(pool))
	getter := trmpgx.DefaultCtxGetter
	nested := trmpgx.MustSettings(settings.Must(settings.WithPropagation(trm.PropagationNested)))
	return txImpl{
		name: "trm-pgxv5",
		oneInsert: func(ctx context.Context) error {
			return m.Do(ctx, func(ctx context.Context) error {
				_, err := getter.DefaultTrOrDB(ctx, pool).Exec(ctx, txInsertSQL, 1, "x")
				return err
			})
		},
		nested: func(ctx context.Context) error {
			return m.Do(ctx, func(ctx context.Context) error {
				if _, err := getter.DefaultTrOrDB(ctx, pool).Exec(ctx, txInsertSQL, 1, "x"); err != nil {
					return err
				}
				return m.DoWithSettings(ctx, nested, func(ctx context.Context) error {
					_, err := getter.DefaultTrOrDB(ctx, pool).Exec(ctx, txInsertSQL, 2, "y")
					return err
				})
			})
		},
	}
}
