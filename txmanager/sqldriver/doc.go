// Package sqldriver gives database/sql code — and sqlx, bun, gorm and the other
// libraries built on it — the transaction the context carries.
//
// [Open] returns a *sql.DB whose driver routes each statement by its context, as
// package entdriver does for ent: a statement whose ctx carries a transaction of the
// txmanager.Manager runs in it (the same connection, the same savepoints, sent in the
// same round trip as the pending BEGIN or SAVEPOINT); any other statement runs on the
// pool. BeginTx inside a transaction opens a Nested scope — a savepoint whose rollback
// keeps the outer work — and outside one begins a transaction the Manager runs as
// usual. Nothing on this *sql.DB can write outside the unit of work whose ctx it is
// given.
//
//	db := sqldriver.Open(tm) // once, at start-up
//	err := tm.Do(ctx, func(ctx context.Context) error {
//		_, err := db.ExecContext(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, id)
//		return err // rolled back with the transaction
//	})
//
// Values are passed to pgx as they are (pgx understands driver.Valuer and
// sql.Scanner), and rows are converted to database/sql values as pgx's stdlib
// package does. Use the context-taking methods (ExecContext, QueryContext, ...):
// the others run with context.Background(), hence on the pool.
package sqldriver
