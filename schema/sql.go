package schema

import _ "embed" // for create.sql

// createSQL is what Migrate runs on an empty database; TestSQLIsWhatMigrateRuns checks
// it, and `go test ./schema -run TestSQLIsWhatMigrateRuns -update` rewrites it.
//
//go:embed create.sql
var createSQL string

// SQL returns the statements, separated by semicolons, that create uno's tables (the
// uno_* tables and their indexes) in a database that has none of them: exactly what
// [Migrate] runs on such a database. It is for applications whose migrations are SQL
// files applied by a tool (goose, golang-migrate, Atlas, Flyway): put it in a migration
// of its own, and never call Migrate on the same database.
//
// The text changes only when uno's tables change: between two versions of uno, the
// difference of their SQL is what an upgrade migration has to do.
func SQL() string { return createSQL }
