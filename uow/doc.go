// Package uow runs use-cases as units of work: one transaction that gathers the
// use-case's database work (pgx through txmanager, ent through entdriver) and the
// domain events it emits, and that publishes those events only once it has committed.
//
// A [Manager] is built once, at start-up, over a txmanager.Manager and an
// events.Outbox. [Manager.Do] runs a use-case:
//
//	err := units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
//		acct, err := client.Account.UpdateOneID(id).AddBalance(-amount).Save(ctx)
//		if err != nil {
//			return err
//		}
//		return u.Emit(events.New("account.debited", Debited{ID: acct.ID, Amount: amount},
//			events.WithKey(strconv.FormatInt(acct.ID, 10))))
//	})
//
// Events follow the scope they were emitted in: a scope rolled back to its savepoint
// (txmanager.Nested) drops its events, an attempt that fails and is retried drops all of
// its events, and events reach the outbox only in the round trip that commits the
// outermost transaction. An events.Relay then forwards them to subscribers, at least
// once. Code that holds only the context emits with the package-level [Emit].
package uow
