// Package replication tests uno beyond one server: a primary with a streaming hot
// standby, started by the harness from the local PostgreSQL binaries (pgtest.LocalServer
// and pgtest.Standby), failed over under load with a provider that names both hosts and
// target_session_attrs=read-write, and replica reads with read-your-writes.
//
// The tests measure what docs/operations.md reports: the time from promotion to the
// first successful Do, and what is lost with synchronous and asynchronous replication.
// Run them with -v to see the figures:
//
//	go test ./tests/replication -run Failover -v
package replication
