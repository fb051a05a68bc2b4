// Command quickstart is uno's demo: it finds or starts PostgreSQL, creates a fresh
// database, migrates it, runs an outbox relay and a subscriber, performs three use-cases
// as units of work and prints the events the subscriber received — only those of the
// committed transactions — and the final balances.
//
//	go run ./examples/quickstart
//
// It uses DATABASE_URL when set, else a server on 127.0.0.1:5432, else local PostgreSQL
// binaries (started in a temporary directory and stopped at the end), else Docker.
package main
