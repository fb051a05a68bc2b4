// Package fault is the fault-injection suite: transactions, units of work and the relay
// under connections cut at chosen protocol points (internal/faultproxy), a PostgreSQL
// server restarted under load (a private server from pgtest.LocalServer, never the
// shared one), contention and chaos. Each test is bounded to a few seconds; longer
// variants run with -fault.long.
package fault
