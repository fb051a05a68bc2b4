// Package pgserver finds or starts a PostgreSQL server for development, examples and
// tests.
//
// [Find] looks, in order, for: the DATABASE_URL environment variable; a server
// listening on 127.0.0.1:5432; local PostgreSQL binaries (initdb and pg_ctl, on PATH or
// under /usr/lib/postgresql/*/bin), which it starts in a temporary directory on a free
// port (as an unprivileged user when the process runs as root); Docker, through
// dockertest. When none of these gives a server, it returns an error that says how to
// get one.
package pgserver
