// Package sqlcexample shows sqlc-generated code joining uno's units of work.
//
// sqlc generates Queries over a DBTX — Exec, Query and QueryRow on a context — and
// a *txmanager.Manager is such a querier that routes every call by its ctx: to the
// transaction the ctx carries, else to the pool. So the Queries are built once, at
// start-up, and every call made inside uow.Do (or txmanager.Manager.Do) runs in that
// unit of work:
//
//	queries := db.New(tm) // once
//	err := units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
//		task, err := queries.CreateTask(ctx, "write the report")
//		if err != nil {
//			return err // rolls back with the unit of work
//		}
//		return u.Emit(events.New("task.created", task))
//	})
//
// The code under db/ is what sqlc v1.31.1 generates from schema.sql, query.sql and
// sqlc.yaml (go generate regenerates it).
package sqlcexample
