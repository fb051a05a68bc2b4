// Package entembed shows an application that keeps uno's tables in its own ent schema,
// so that one ent migration creates and upgrades the application's tables and uno's.
//
// The application's schema package declares one type per uno table, each embedding
// uno's schema type:
//
//	type UnoOutbox struct{ unoschema.Outbox } // and UnoOutboxLease, UnoOutboxRelay, UnoInbox, UnoDeadLetter
//
// and its migration installs uno's diff hook, which gives uno_outbox its composite
// primary key (ent declares none of its own):
//
//	migrate.NewSchema(drv).Create(ctx, entschema.WithDiffHook(unoschema.DiffHook))
//
// [Migrate] does this. The same hook goes into ent's versioned migrations
// (migrate.NamedDiff). Atlas's ent:// schema loader cannot run a Go hook: with it, put
// schema.SQL in a migration of its own instead of embedding uno's types.
package entembed
