// Package ent is the code ent generates from ../schema: the application's Order and
// uno's tables, embedded. Do not edit the generated files; change the schemas and run
// `go generate ./...` (CI checks that the committed code is current).
package ent

//go:generate go tool -modfile=../../../tools.go.mod ent generate --target . ../schema
