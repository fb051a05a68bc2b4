// Package ent is the code ent generates from uno's own schemas in ../schema (the
// uno_* tables of the outbox, the inbox, the dead letters and the relay leases): the
// client, the entities, their builders and predicates, and the migration tables in
// ent/migrate that schema.Migrate applies. Do not edit the generated files; change the
// schemas and run `go generate ./...` (CI checks that the committed code is current).
//
// The events package reads and writes these tables with SQL of its own; this client is
// for operations tools and for inspecting them, e.g. the dead letters:
//
//	client := ent.NewClient(ent.Driver(entdriver.New(tm)))
//	dead, err := client.DeadLetter.Query().All(ctx)
package ent

//go:generate go tool -modfile=../tools.go.mod ent generate --target . --feature sql/upsert,sql/lock,sql/modifier ../schema
