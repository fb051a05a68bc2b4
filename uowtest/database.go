package uowtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/internal/pgclone"
	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/schema"
)

// setupTimeout bounds finding a server, building the template and cloning it.
const setupTimeout = 3 * time.Minute

// Template describes the database [NewDatabase] clones for each test: uno's tables
// (schema.Migrate) plus the application's own, made by Migrate. Declare one per test
// package, as a package-level variable, and do not copy it:
//
//	var db = &uowtest.Template{Name: "bank", Version: "7", Migrate: bank.Migrate}
//
// The template is built once per server and kept there from run to run under a name
// made of Name, Version and a fingerprint of uno's tables; so change Version whenever
// what Migrate creates changes (a migration added, a table altered), or the tests
// keep getting the old schema. A hash of the migration files makes a good Version.
type Template struct {
	// Name identifies the application (letters, digits and _; at most 24 of them
	// count), e.g. "bank".
	Name string
	// Version identifies what Migrate creates; see above.
	Version string
	// Migrate creates the application's tables in the template, through pool, once
	// uno's tables exist. Nil: the template holds uno's tables only.
	Migrate func(ctx context.Context, pool *pgxpool.Pool) error
	// ServerURL is a connection string to the PostgreSQL server, as a user allowed to
	// create databases. Empty: the server pgserver.Find finds (DATABASE_URL, then
	// 127.0.0.1:5432, then local binaries started for the test process, then Docker).
	ServerURL string

	once    sync.Once
	admin   string // connection string of the server
	name    string // the template database's name
	initErr error
}

// init finds the server and names the template, once.
func (tpl *Template) init(ctx context.Context) error {
	tpl.once.Do(func() {
		tpl.name = templateName(tpl.Name, tpl.Version)
		tpl.admin = tpl.ServerURL
		if tpl.admin != "" {
			return
		}
		// A server started from local binaries lives as long as the test process
		// (it dies with it): the template's databases are in it.
		srv, err := pgserver.Find(ctx)
		if err != nil {
			tpl.initErr = err
			return
		}
		tpl.admin = srv.URL
	})
	return tpl.initErr
}

// build is the template's Build step: uno's tables, then the application's.
func (tpl *Template) build(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to the template: %w", err)
	}
	defer pool.Close()
	if err := schema.MigratePool(ctx, pool); err != nil {
		return err
	}
	if tpl.Migrate != nil {
		if err := tpl.Migrate(ctx, pool); err != nil {
			return fmt.Errorf("the Template's Migrate: %w", err)
		}
	}
	return nil
}

// NewDatabase creates a fresh database for the test, cloned from tpl (built first if
// the server does not have it yet), drops it when the test ends, and returns its
// connection string. Open the application's pool or provider on it; close them in the
// test's cleanup (registered after this call, they run before the drop).
//
// Each call makes a database of its own, so tests that use one run in parallel without
// seeing each other's rows, events or locks, and code under test may commit.
func NewDatabase(tb testing.TB, tpl *Template) string {
	tb.Helper()
	if tpl == nil {
		tb.Fatal("uowtest: NewDatabase needs a *Template")
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := tpl.init(ctx); err != nil {
		tb.Fatalf("uowtest: find a PostgreSQL server for the test database: %v", err)
		return ""
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	name, err := pgclone.Clone(ctx, tpl.admin, pgclone.Template{Name: tpl.name, Build: tpl.build}, tb.Name(), logger)
	if err != nil {
		tb.Fatalf("uowtest: %v", err)
		return ""
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pgclone.Drop(ctx, tpl.admin, name); err != nil {
			tb.Errorf("uowtest: %v", err)
		}
	})
	return pgclone.WithDatabase(tpl.admin, name)
}

// templateName names the template of an application: uno_tpl_<name>_<hash of uno's
// tables and version>.
func templateName(name, version string) string {
	label := pgclone.Sanitize(name)
	if len(label) > 24 {
		label = label[:24]
	}
	sum := sha256.Sum256([]byte(schema.SQL() + "\x00" + version))
	return "uno_tpl_" + label + "_" + hex.EncodeToString(sum[:6])
}
