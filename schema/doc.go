// Package schema holds the ent schemas of uno: the framework's own tables (the outbox,
// the inbox and the dead letters of the events package) and a small reference domain,
// accounts and the transfers between them, used by the examples and the tests.
//
// The code generated from these schemas lives in the ent package at the root of the
// module (github.com/uno-framework/uno/ent); `go generate ./...` regenerates it.
// This package must not import that package: the generated ent/runtime.go imports this
// one for the defaults and validators declared here.
//
// [Migrate] creates or upgrades the tables through ent's migration engine, on the
// database/sql view of the pool (pgx rows cannot describe their columns the way ent's
// migration engine needs):
//
//	if err := schema.Migrate(ctx, prov); err != nil { // prov is a *provider.Provider
//		return err
//	}
package schema
