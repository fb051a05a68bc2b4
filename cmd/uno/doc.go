// Command uno operates the database side of an uno application: it migrates uno's
// tables, shows what waits in the outbox (events decoded), handles the dead letters, and
// checks the database's health.
//
// Usage:
//
//	uno [flags] migrate [--sql]
//	uno [flags] outbox lag
//	uno [flags] outbox pending [--limit N]
//	uno [flags] deadletters list [--limit N] [--after ID]
//	uno [flags] deadletters show ID
//	uno [flags] deadletters requeue ID...
//	uno [flags] deadletters purge --older-than DURATION
//	uno [flags] health
//
// Flags (before the command, or after it before its arguments):
//
//	--database-url URL  the database (default: DATABASE_URL, else the libpq PG* variables)
//	--json              print JSON for scripts instead of tables
//	--timeout D         give up after D, connection included (default 30s)
//
// migrate applies uno's migrations (schema.Migrate: it creates and upgrades uno's own
// tables and never touches another) and lists the changes it made. With --sql it
// prints the DDL that creates uno's tables in an empty database (schema.SQL) instead,
// for migration tools, and does not connect.
//
// outbox lag prints the pending events, those retrying, the age of the oldest and the
// number of dead letters. outbox pending prints the events waiting to be relayed, oldest
// first (at most --limit, default 100), decoded from the outbox's binary envelopes:
// topic, key, type, and the payload as JSON when it is JSON, else as text when it is
// UTF-8, else base64.
//
// deadletters list prints the events the relay gave up on (at most --limit, default
// 100, with ids above --after); show prints one with its payload, metadata and last
// error; requeue puts them back into the outbox, to be published again; purge deletes
// those that failed more than DURATION ago (a Go duration, or a number of days as 7d).
//
// health connects, measures the round trip, and reports the server version, whether it
// is in recovery, the pool, and the outbox lag.
//
// Exit codes, for scripts:
//
//	0  done (health: healthy)
//	1  the command failed (a database error)
//	2  usage: unknown command, bad flag or argument
//	3  configuration: no database URL, or a malformed one
//	4  the database cannot be reached
//	5  the database lacks uno's tables: run uno migrate
//	6  not found: a dead letter id that does not exist
package main
