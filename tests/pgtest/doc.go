// Package pgtest is the PostgreSQL test harness every uno test package uses.
//
// A package's TestMain calls [Main]; it finds or starts a server through pgserver,
// creates a fresh database for the package, runs the tests, drops the database and
// fails the run if goroutines leaked. Tests then take pools with [Pool] or [NewPool],
// which check at cleanup that no connection is still acquired.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest
