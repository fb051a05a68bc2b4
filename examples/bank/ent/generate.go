// Package ent is the code ent generates from the examples' reference domain in
// ../schema: the client, the Account and Transfer entities, their builders and
// predicates, and the migration tables in ent/migrate. Do not edit the generated files;
// change the schemas and run `go generate ./...` (CI checks that the committed code is
// current).
//
// Build one client at start-up on the transaction manager's driver, so that every
// statement joins the transaction the context carries:
//
//	client := ent.NewClient(ent.Driver(entdriver.New(tm)))
package ent

//go:generate go tool -modfile=../../../tools.go.mod ent generate --target . --feature sql/upsert,sql/lock,sql/modifier ../schema
