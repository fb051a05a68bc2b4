// Package schema holds the ent schemas of the examples' reference domain: bank
// accounts and the transfers between them. The code generated from them lives in
// github.com/uno-framework/uno/examples/bank/ent; `go generate ./...` regenerates it.
//
// These tables belong to the examples, not to uno: uno's own schema.Migrate never
// creates or changes them; bank.Migrate does.
package schema
