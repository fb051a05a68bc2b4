// Package entdriver is an ent dialect.Driver ("postgres") over pgx that runs every
// statement on the transaction the context carries, else on the pool.
//
// Build one ent client at start-up and use it everywhere, inside and outside
// transactions; it never needs to be passed around:
//
//	tm, err := txmanager.New(pool, txmanager.Config{})
//	...
//	client := ent.NewClient(ent.Driver(entdriver.New(tm)))
//
//	err = tm.Do(ctx, func(ctx context.Context) error {
//		_, err := client.Account.UpdateOneID(id).AddBalance(-amount).Save(ctx) // joins the transaction
//		return err
//	})
//
// The statements go through pgx directly, not through database/sql: [Driver.Exec] and
// [Driver.Query] run on txmanager.Manager.Querier(ctx). ent opens transactions of its
// own for operations that take several statements (UpdateOne, a Create that sets
// edges stored in other tables, client.Tx). [Driver.Tx] turns those into a
// txmanager scope: inside a transaction a Nested scope, whose SAVEPOINT travels with
// its first statement and whose RELEASE travels with the next one, so that ent's
// transactions cost no round trip of their own; outside a transaction, a new
// transaction whose BEGIN travels with the first statement.
//
// # Limitations
//
// pgx rows cannot describe their columns as database/sql's *sql.ColumnType, so
// Rows.ColumnTypes returns [ErrColumnTypes]. ent's queries do not need it (columns
// whose type ent does not know are scanned into any); ent's migration engine does,
// which is why migrations (uno's schema.Migrate, an application's ent
// migrate.Schema.Create) run on a *sql.DB view of the pool instead. Results
// have no LastInsertId ([ErrLastInsertID]); ent uses RETURNING on PostgreSQL. Session
// variables set with entgo.io/ent/dialect/sql.WithVar are not applied; use SET LOCAL
// inside the transaction instead.
package entdriver
