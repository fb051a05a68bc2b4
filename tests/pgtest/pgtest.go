package pgtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/uno-framework/uno/internal/pgclone"
	"github.com/uno-framework/uno/pgserver"
)

// The package's test database, set once by Main before the tests run. Main is the only
// writer, and it writes before m.Run starts any test.
var (
	connString string // the package database
	adminURL   string // the server's maintenance database
)

// serverEnv names the environment variable that, set to "local", makes Main start a
// server from local binaries even when DATABASE_URL or 127.0.0.1:5432 would give one.
const serverEnv = "UNO_PGTEST_SERVER"

// Option tunes Main.
type Option func(*mainOptions)

type mainOptions struct {
	leak []goleak.Option
}

// IgnoreGoroutine makes the leak check after the tests ignore goroutines that have
// function (fully qualified, e.g. "github.com/some/lib.(*Client).loop") anywhere on
// their stack. Use it for a goroutine a library starts once and never stops.
func IgnoreGoroutine(function string) Option {
	return func(o *mainOptions) { o.leak = append(o.leak, goleak.IgnoreAnyFunction(function)) }
}

// Main runs the package's tests against a fresh database of their own and exits. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// It finds or starts a server with pgserver.Find, creates the database from the
// harness's template, runs the tests, drops the database, stops a server it started,
// and fails the run when goroutines are left behind (see IgnoreGoroutine). When no
// server can be had it fails with a message that says how to get one.
func Main(m *testing.M, opts ...Option) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts []Option) int {
	var o mainOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	// TestMain runs before the testing package parses its flags; -test.v decides how
	// much the harness says.
	if !flag.Parsed() {
		flag.Parse()
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	findOpts := []pgserver.Option{pgserver.WithLogger(logger)}
	switch v := os.Getenv(serverEnv); v {
	case "":
	case "local":
		findOpts = append(findOpts, pgserver.SkipEnv(), pgserver.SkipLocalhost(), pgserver.SkipDocker())
	default:
		fmt.Fprintf(os.Stderr, "pgtest: %s=%q: want it unset (find a server) or \"local\" (start one from local binaries)\n", serverEnv, v)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	srv, err := pgserver.Find(ctx, findOpts...)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	name, err := pgclone.Clone(ctx, srv.URL, pgclone.Template{Name: templateName}, packageName(), logger)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if err := srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		return 1
	}
	adminURL = srv.URL
	connString = pgclone.WithDatabase(srv.URL, name)
	logger.Info("pgtest: package database ready", "database", name, "server", srv.Source)

	code := m.Run()

	if err := dropDatabase(srv.URL, name); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		code = max(code, 1)
	}
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		code = max(code, 1)
	}
	if code == 0 {
		if err := goleak.Find(o.leak...); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: goroutines leaked (stop them, or see pgtest.IgnoreGoroutine):", err)
			code = 1
		}
	}
	return code
}

// ConnString returns the connection string of the package's test database.
func ConnString(tb testing.TB) string {
	tb.Helper()
	if connString == "" {
		tb.Fatal("pgtest: no test database; call pgtest.Main from TestMain")
	}
	return connString
}

// URL returns the connection string of the package's test database, or "" before Main
// set it up. It is for Example functions, which get no testing.TB.
func URL() string { return connString }

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
		if n := waitReleased(pool); n != 0 {
			tb.Errorf("pgtest: %d connections still acquired at the end of the test; release every "+
				"connection (rows.Close, conn.Release, tx.Rollback)", n)
			// pgxpool's Close waits for acquired connections: close in the background
			// rather than hang the run (the leak check reports it if they never return).
			go pool.Close()
			return
		}
		pool.Close()
	})
	return pool
}

// Conn returns a single connection to the package's test database, closed at cleanup.
func Conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ConnString(tb))
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// RequireNoAcquired fails the test at once if pool has connections acquired. It gives
// connections being released in the background a moment to come back first.
func RequireNoAcquired(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	if n := waitReleased(pool); n != 0 {
		tb.Fatalf("pgtest: %d connections still acquired, want none", n)
	}
}

// waitReleased returns the number of acquired connections once it is zero, or after
// two seconds: pgxpool returns some connections from goroutines of its own.
func waitReleased(pool *pgxpool.Pool) int32 {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := pool.Stat().AcquiredConns()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

// LocalServer starts an ephemeral server from local PostgreSQL binaries with
// pgserver.StartLocal, for tests that stop and start a server or need one on a chosen
// port, and closes it at cleanup. When the binaries are missing it skips the test,
// except under CI (the CI environment variable set), where it fails it.
func LocalServer(tb testing.TB, opts ...pgserver.Option) *pgserver.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgserver.StartLocal(ctx, opts...)
	if errors.Is(err, pgserver.ErrNoBinaries) && os.Getenv("CI") == "" {
		tb.Skipf("pgtest: %v", err)
	}
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return srv
}

// Standby starts a streaming hot standby of primary (a server from LocalServer) with
// primary.StartStandby, and closes it at cleanup. Pass pgserver.Synchronous() for
// synchronous replication and pgserver.WithSetting("recovery_min_apply_delay", ...) to
// delay its replay; Promote fails over to it. Cleanups run last first, so the standby
// stops before its primary.
func Standby(tb testing.TB, primary *pgserver.Server, opts ...pgserver.Option) *pgserver.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := primary.StartStandby(ctx, opts...)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return srv
}
