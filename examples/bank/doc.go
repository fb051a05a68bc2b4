// Package bank is the reference domain of uno's examples and tests: bank accounts
// (a balance that a CHECK constraint keeps non-negative) and the transfers between
// them, as ent schemas (package schema), their generated code (package ent) and
// [Migrate], which creates their tables.
//
// It is not part of the library: uno's schema.Migrate creates only uno's own uno_*
// tables. An application migrates its own tables and uno's side by side, as the
// quickstart does:
//
//	if err := schema.Migrate(ctx, p); err != nil { // uno's tables
//		return err
//	}
//	if err := bank.MigratePool(ctx, p.Pool()); err != nil { // the application's tables
//		return err
//	}
package bank
