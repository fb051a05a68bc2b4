package pgclone_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/pgclone"
	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// adminURL is a connection string to the server: the package database will do.
func adminURL(t *testing.T) string { return pgtest.ConnString(t) }

func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// TestParallelClonesOfOneTemplate does what test processes of several packages
// do at once against one server, on a template of its own that does not exist yet:
// exactly one of them creates the template, and each gets its own clone of it.
func TestParallelClonesOfOneTemplate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	template := "uno_template_test_" + strings.TrimPrefix(pgclone.Name("", time.Now()), pgclone.Prefix)
	admin := adminConn(t)
	t.Cleanup(func() { _ = pgclone.DropTemplate(context.Background(), admin, template) })

	const packages = 4
	names := make([]string, packages)
	errs := make([]error, packages)
	var wg sync.WaitGroup
	for i := range packages {
		wg.Go(func() {
			names[i], errs[i] = pgclone.Clone(ctx, adminURL(t), pgclone.Template{Name: template}, fmt.Sprintf("pkg%d", i), slog.New(slog.DiscardHandler))
		})
	}
	wg.Wait()
	for i := range packages {
		require.NoError(t, errs[i])
		t.Cleanup(func() { _ = pgclone.Drop(context.Background(), adminURL(t), names[i]) })
	}

	assert.Len(t, slices.Compact(slices.Sorted(slices.Values(names))), packages, "every package has its own database")
	var isTemplate, allowConn bool
	require.NoError(t, admin.QueryRow(ctx, "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1",
		template).Scan(&isTemplate, &allowConn))
	assert.True(t, isTemplate)
	assert.False(t, allowConn, "nobody connects to the template, so cloning it never fails")
	exists, err := pgclone.Exists(ctx, admin, template+"_building")
	require.NoError(t, err)
	assert.False(t, exists)

	for i, name := range names {
		assert.True(t, strings.HasPrefix(name, pgclone.Prefix), name)
		assert.True(t, strings.HasSuffix(name, fmt.Sprintf("_pkg%d", i)), name)
		conn, err := pgx.Connect(ctx, pgclone.WithDatabase(adminURL(t), name))
		require.NoError(t, err)
		var db, marker string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database(), obj_description('public'::regnamespace, 'pg_namespace')").
			Scan(&db, &marker))
		require.NoError(t, conn.Close(ctx))
		assert.Equal(t, name, db)
		assert.Equal(t, pgclone.Marker(template), marker, "%s is a clone of the template", name)
	}

	// At the end each package drops its database, even with connections still open.
	open, err := pgx.Connect(ctx, pgclone.WithDatabase(adminURL(t), names[0]))
	require.NoError(t, err)
	defer open.Close(context.Background())
	for _, name := range names {
		require.NoError(t, pgclone.Drop(context.Background(), adminURL(t), name))
		exists, err := pgclone.Exists(ctx, admin, name)
		require.NoError(t, err)
		assert.False(t, exists, name)
	}
}

func TestStaleDatabasesAreDropped(t *testing.T) {
	ctx := t.Context()
	admin := adminConn(t)
	stale := pgclone.Name("stale", time.Now().Add(-pgclone.StaleAfter-time.Hour))
	fresh := pgclone.Name("fresh", time.Now())
	for _, name := range []string{stale, fresh} {
		_, err := admin.Exec(ctx, "CREATE DATABASE "+pgclone.Ident(name))
		require.NoError(t, err)
		t.Cleanup(func() { _ = pgclone.Drop(context.Background(), adminURL(t), name) })
	}

	pgclone.DropStale(ctx, admin, time.Now(), slog.New(slog.DiscardHandler))

	exists, err := pgclone.Exists(ctx, admin, stale)
	require.NoError(t, err)
	assert.False(t, exists, "a package database a day old is a dead process's leftover")
	exists, err = pgclone.Exists(ctx, admin, fresh)
	require.NoError(t, err)
	assert.True(t, exists, "a recent package database may be in use")
}

func TestDatabaseName(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	name := pgclone.Name("My-Package.With_a_very_long_name_that_goes_on_and_on", now)

	assert.LessOrEqual(t, len(name), pgclone.MaxIdentifier)
	assert.True(t, strings.HasPrefix(name, "uno_test_20260102030405_"), name)
	assert.Contains(t, name, "_my_package_with_a")
	assert.NotEqual(t, name, pgclone.Name("My-Package.With_a_very_long_name_that_goes_on_and_on", now))
	assert.True(t, pgclone.IsStale(name, now.Add(pgclone.StaleAfter+time.Second)))
	assert.False(t, pgclone.IsStale(name, now.Add(pgclone.StaleAfter-time.Second)))
	assert.False(t, pgclone.IsStale("uno_test_notatime_x", now))
	assert.False(t, pgclone.IsStale("app", now))
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://alice:p%40ss@db.example:6543/app?sslmode=require&application_name=x",
			"postgres://alice:p%40ss@db.example:6543/uno_test_x?sslmode=require&application_name=x"},
		{"postgresql://127.0.0.1/postgres", "postgresql://127.0.0.1/uno_test_x"},
		{"host=/tmp port=5433 user=bob dbname=app", "host=/tmp port=5433 user=bob dbname=app dbname='uno_test_x'"},
	} {
		got := pgclone.WithDatabase(tc.in, "uno_test_x")
		assert.Equal(t, tc.want, got)
		cfg, err := pgx.ParseConfig(got)
		require.NoError(t, err, got)
		assert.Equal(t, "uno_test_x", cfg.Database)
	}
}

// TestTemplateIsBuiltOnceAndAFailedBuildLeavesNothing: Build fills the template once;
// clones get its tables; a Build that fails leaves neither template nor half-built one.
func TestTemplateIsBuiltOnceAndAFailedBuildLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	admin := adminConn(t)
	logger := slog.New(slog.DiscardHandler)
	template := "uno_template_test_" + strings.TrimPrefix(pgclone.Name("", time.Now()), pgclone.Prefix)
	t.Cleanup(func() { _ = pgclone.DropTemplate(context.Background(), admin, template) })

	builds := 0
	tpl := pgclone.Template{Name: template, Build: func(ctx context.Context, url string) error {
		builds++
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "CREATE TABLE built (v int); INSERT INTO built VALUES (7)")
		return err
	}}
	for range 2 {
		name, err := pgclone.Clone(ctx, adminURL(t), tpl, "built", logger)
		require.NoError(t, err)
		t.Cleanup(func() { _ = pgclone.Drop(context.Background(), adminURL(t), name) })
		conn, err := pgx.Connect(ctx, pgclone.WithDatabase(adminURL(t), name))
		require.NoError(t, err)
		var v int
		require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM built").Scan(&v))
		require.NoError(t, conn.Close(ctx))
		assert.Equal(t, 7, v)
	}
	assert.Equal(t, 1, builds, "the template is built once and then reused")

	failing := template + "_f"
	_, err := pgclone.Clone(ctx, adminURL(t), pgclone.Template{Name: failing, Build: func(context.Context, string) error {
		return fmt.Errorf("migration 3 failed")
	}}, "failing", logger)
	require.ErrorContains(t, err, "migration 3 failed")
	for _, name := range []string{failing, failing + "_building"} {
		exists, err := pgclone.Exists(ctx, admin, name)
		require.NoError(t, err)
		assert.False(t, exists, name)
	}
}
