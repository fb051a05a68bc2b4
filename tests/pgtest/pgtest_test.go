package pgtest_test

import (
	"context"
	"testing"

	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPoolReachesPackageDatabase(t *testing.T) {
	pool := pgtest.Pool(t)
	var db string
	if err := pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db == "test" || db == "postgres" {
		t.Fatalf("pool is on shared database %q, want the package's own", db)
	}
}
