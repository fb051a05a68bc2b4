// Package schema holds the ent schemas of uno's own tables, and only those: the outbox,
// the outbox's partition leases and relays, the inbox and the dead letters of the
// events package, all named uno_*.
//
// The code generated from these schemas lives in the ent package at the root of the
// module (github.com/uno-framework/uno/ent); `go generate ./...` regenerates it.
// This package must not import that package: generated code imports this one (for
// [TextArray]).
//
// [Migrate] creates or upgrades uno's tables through ent's migration engine, on the
// database/sql view of the pool (pgx rows cannot describe their columns the way ent's
// migration engine needs). It inspects and changes the uno_* tables and no other: a
// database that already holds the application's own tables, whatever their names, keeps
// them exactly as they were.
//
//	if err := schema.Migrate(ctx, prov); err != nil { // prov is a *provider.Provider
//		return err
//	}
//
// The application's own tables are migrated by the application, before or after; the
// examples' reference domain (github.com/uno-framework/uno/examples/bank) shows one way.
package schema
