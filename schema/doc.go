// Package schema holds the ent schemas of uno's own tables, and only those: the outbox,
// the outbox's partition leases and relays, the inbox and the dead letters of the
// events package, all named uno_*.
//
// The code generated from these schemas lives in the ent package at the root of the
// module (github.com/uno-framework/uno/ent); `go generate ./...` regenerates it.
// This package must not import that package: generated code may import this one.
//
// uno's tables get into a database in one of three ways; pick one per database.
//
// # Migrate
//
// [Migrate] creates or upgrades uno's tables through ent's migration engine, on the
// database/sql view of the pool (pgx rows cannot describe their columns the way ent's
// migration engine needs). It inspects and changes the uno_* tables and no other: a
// database that already holds the application's own tables, whatever their names,
// keeps them exactly as they were. The application migrates its own tables itself,
// before or after.
//
//	if err := schema.Migrate(ctx, prov); err != nil { // prov is a *provider.Provider
//		return err
//	}
//
// # Plain SQL
//
// Applications whose migrations are SQL files applied by a tool (goose,
// golang-migrate, Atlas, Flyway) put the text of [SQL] in a migration of their own: the
// statements Migrate runs on an empty database.
//
// # In the application's own ent schema
//
// An application on ent can make uno's tables part of its own ent schema, so that its
// one ent migration covers both: its schema package declares a type per uno table that
// embeds uno's (each keeps uno's table name, fields and indexes), and its migration
// installs [DiffHook], which gives uno_outbox its composite primary key:
//
//	// in the application's schema package
//	type UnoOutbox struct{ unoschema.Outbox }
//	type UnoOutboxLease struct{ unoschema.OutboxLease }
//	type UnoOutboxRelay struct{ unoschema.OutboxRelay }
//	type UnoInbox struct{ unoschema.Inbox }
//	type UnoDeadLetter struct{ unoschema.DeadLetter }
//
//	// its migration (or ent's versioned migrate.NamedDiff, with the same option)
//	err := client.Schema.Create(ctx, entschema.WithDiffHook(unoschema.DiffHook))
//
// github.com/uno-framework/uno/examples/entembed does this, and its test checks that
// Migrate then finds nothing to change. Atlas's ent:// schema loader cannot run a Go
// diff hook (uno_outbox would get ent's single-column key, which costs the relay its
// ordered reads); with the Atlas CLI, use [SQL] instead.
package schema
