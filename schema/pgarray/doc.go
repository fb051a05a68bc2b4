// Package pgarray holds Go types for PostgreSQL array columns in ent schemas, which
// scan and encode through pgx's codecs (database/sql has no array types of its own).
//
// It is a package of its own, not part of package schema, because ent's generated code
// imports the package of every custom field type next to the application's own schema
// package, which is conventionally named schema too.
package pgarray
