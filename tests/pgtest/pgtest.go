package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/uno-framework/uno/pgserver"
)

// connString is the package database's connection string, set by Main.
var connString string

// Main runs the package's tests against a fresh database and exits. Call it from
// TestMain. It fails the run when goroutines are left behind after the tests.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	srv, err := pgserver.Find(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer srv.Close()

	name, err := createDatabase(srv.URL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	cfg, err := pgx.ParseConfig(srv.URL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	connString = withDatabase(srv.URL, cfg, name)
	code := m.Run()
	if err := dropDatabase(srv.URL, name); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: goroutines leaked:", err)
			code = 1
		}
	}
	return code
}

func createDatabase(adminURL string) (string, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	wd, _ := os.Getwd()
	name := "uno_test_" + sanitize(filepath.Base(wd)) + "_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to create the test database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create test database %s: %w", name, err)
	}
	return name, nil
}

func dropDatabase(adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to drop the test database: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// withDatabase returns url pointing at database name.
func withDatabase(url string, cfg *pgx.ConnConfig, name string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// ConnString returns the connection string of the package's test database.
func ConnString(tb testing.TB) string {
	tb.Helper()
	if connString == "" {
		tb.Fatal("pgtest: no test database; call pgtest.Main from TestMain")
	}
	return connString
}

// PoolConfig returns a pool configuration for the package's test database, to adjust
// before passing it to NewPool.
func PoolConfig(tb testing.TB) *pgxpool.Config {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(ConnString(tb))
	if err != nil {
		tb.Fatalf("pgtest: parse config: %v", err)
	}
	return cfg
}

// Pool returns a new pool on the package's test database. At cleanup it fails the test
// if a connection is still acquired, then closes the pool.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return NewPool(tb, PoolConfig(tb))
}

// NewPool returns a pool built from cfg, with the same cleanup checks as Pool.
func NewPool(tb testing.TB, cfg *pgxpool.Config) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("pgtest: new pool: %v", err)
	}
	tb.Cleanup(func() {
		if n := pool.Stat().AcquiredConns(); n != 0 {
			tb.Errorf("pgtest: %d connections still acquired at the end of the test", n)
		}
		pool.Close()
	})
	return pool
}
