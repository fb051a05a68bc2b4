// Package pgtest is the PostgreSQL test harness every uno test package uses.
//
// A package's TestMain calls [Main]:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Main gets a server from pgserver.Find (DATABASE_URL, 127.0.0.1:5432, local binaries,
// Docker; set UNO_PGTEST_SERVER=local to always start one from local binaries), creates
// a fresh database for the package, runs the tests, drops the database (WITH (FORCE)),
// stops a server it started and fails the run if goroutines leaked ([IgnoreGoroutine]
// lets a known one through). Tests then take pools with [Pool] or [NewPool] (with
// [PoolConfig]), which fail the test at cleanup if a connection is still acquired, a
// single connection with [Conn], or the connection string with [ConnString].
// [LocalServer] starts a private server a test can stop and start, and [Standby] a
// streaming hot standby of it (synchronous or not, with a replay delay if asked) that a
// test can promote when it stops the primary.
//
// # Databases
//
// Package databases are named uno_test_<UTC time>_<random>_<package> and are cloned
// from the template database uno_template_v1 (UTF8, C locale, marked by a comment on its
// public schema), which the first test process to need it creates on the server, under
// an advisory lock so that parallel processes never race. Cloning needs nobody connected
// to the template, so it does not allow connections. Because each package has its own
// database, `go test ./...` runs packages in parallel against one server. A database
// left by a process that died (killed, timed out) is dropped by a later run once it is
// a day old.
//
// # Local servers
//
// When no server is running and Main starts one from local binaries, every test
// process (one per package) starts its own: this costs a second or two per package and
// isolates packages completely, and each server dies with its process. Start
// PostgreSQL on 127.0.0.1:5432, or set DATABASE_URL, to share one server and save that time.
package pgtest
