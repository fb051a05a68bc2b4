package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// templateName is the database every package database is cloned from. Bump the
	// version when what the template holds changes: a server such as the one on
	// 127.0.0.1:5432 keeps the template from run to run.
	templateName = "uno_template_v1"

	// templateLockKey is the advisory lock that serializes template creation (and the
	// clean-up of stale databases) among test processes sharing a server.
	templateLockKey int64 = 0x756e6f5f706774 // "uno_pgt"

	// dbPrefix starts the name of every package database: uno_test_<UTC time>_<random>_<package>.
	dbPrefix = "uno_test_"
	dbTime   = "20060102150405"

	// staleAfter is the age past which a package database is taken for the leftover
	// of a test process that died, and dropped.
	staleAfter = 24 * time.Hour

	maxIdentifier = 63 // PostgreSQL truncates longer names
)

// templateMarker is the comment the template puts on its public schema, so a test can
// tell a database cloned from it.
func templateMarker(template string) string { return "uno pgtest template " + template }

// createPackageDatabase creates a fresh database for package pkg from template
// (creating the template first if the server has none) and returns its name.
func createPackageDatabase(ctx context.Context, adminURL, template, pkg string, logger *slog.Logger) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to the server to create the package database: %w", err)
	}
	defer conn.Close(context.Background())

	err = withTemplateLock(ctx, conn, func() error {
		if err := ensureTemplate(ctx, conn, adminURL, template, logger); err != nil {
			return err
		}
		dropStale(ctx, conn, time.Now(), logger)
		return nil
	})
	if err != nil {
		return "", err
	}

	name := databaseName(pkg, time.Now())
	create := "CREATE DATABASE " + ident(name) + " TEMPLATE " + ident(template)
	for attempt := 1; ; attempt++ {
		_, err = conn.Exec(ctx, create)
		if err == nil {
			return name, nil
		}
		// 55006: someone is connected to the template. Nobody should be (it does not
		// allow connections), but a superuser may have been; wait for them to leave.
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt == 10 {
			return "", fmt.Errorf("create the package database %s from template %s "+
				"(the server's user needs the CREATEDB privilege): %w", name, template, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("create the package database %s: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// withTemplateLock runs fn holding the session-level advisory lock that test processes
// sharing the server take to create the template.
func withTemplateLock(ctx context.Context, conn *pgx.Conn, fn func() error) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("take the template lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey)
	}()
	return fn()
}

// ensureTemplate creates template unless it exists. The caller holds the template
// lock. The template is built under another name and renamed last, so a process that
// dies half-way never leaves a half-made template behind.
func ensureTemplate(ctx context.Context, conn *pgx.Conn, adminURL, template string, logger *slog.Logger) error {
	exists, err := databaseExists(ctx, conn, template)
	if err != nil || exists {
		return err
	}
	building := template + "_building"
	if err := dropTemplate(ctx, conn, building); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(building)+
		" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		return fmt.Errorf("create the template database %s (the server's user needs the CREATEDB privilege): %w",
			template, err)
	}
	tconn, err := pgx.Connect(ctx, withDatabase(adminURL, building))
	if err != nil {
		return fmt.Errorf("connect to the template database being built: %w", err)
	}
	_, err = tconn.Exec(ctx, "COMMENT ON SCHEMA public IS "+literal(templateMarker(template)))
	_ = tconn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("mark the template database: %w", err)
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + ident(building) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
		"ALTER DATABASE " + ident(building) + " RENAME TO " + ident(template),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("finish the template database %s: %w", template, err)
		}
	}
	logger.Info("pgtest: created the template database", "database", template)
	return nil
}

// dropTemplate drops the template database name if it exists.
func dropTemplate(ctx context.Context, conn *pgx.Conn, name string) error {
	exists, err := databaseExists(ctx, conn, name)
	if err != nil || !exists {
		return err
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + ident(name) + " WITH IS_TEMPLATE false",
		"DROP DATABASE " + ident(name) + " WITH (FORCE)",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("drop the template database %s: %w", name, err)
		}
	}
	return nil
}

func databaseExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var exists bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return exists, nil
}

// dropStale drops package databases older than staleAfter: those of test processes
// that died before dropping theirs. It is best effort.
func dropStale(ctx context.Context, conn *pgx.Conn, now time.Time, logger *slog.Logger) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'uno\_test\_%'`)
	if err != nil {
		logger.Warn("pgtest: list old package databases", "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		logger.Warn("pgtest: list old package databases", "err", err)
		return
	}
	for _, name := range names {
		if !isStale(name, now) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			logger.Warn("pgtest: drop a stale package database", "database", name, "err", err)
			continue
		}
		logger.Info("pgtest: dropped a stale package database", "database", name)
	}
}

// isStale reports whether name is a package database made more than staleAfter before now.
func isStale(name string, now time.Time) bool {
	rest, ok := strings.CutPrefix(name, dbPrefix)
	if !ok || len(rest) < len(dbTime) {
		return false
	}
	made, err := time.Parse(dbTime, rest[:len(dbTime)])
	return err == nil && now.Sub(made) > staleAfter
}

// databaseName returns a new package database name for pkg.
func databaseName(pkg string, now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := dbPrefix + now.UTC().Format(dbTime) + "_" + hex.EncodeToString(b[:]) + "_" + sanitize(pkg)
	if len(name) > maxIdentifier {
		name = name[:maxIdentifier]
	}
	return name
}

// dropDatabase drops the package database, closing the connections still on it.
func dropDatabase(adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to drop the package database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop the package database %s: %w", name, err)
	}
	return nil
}

// packageName is the name of the directory the test binary runs in: its package's.
func packageName() string {
	wd, err := os.Getwd()
	if err != nil {
		return "pkg"
	}
	return filepath.Base(wd)
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

// withDatabase returns the connection string url (a URL or a keyword/value string) with
// its database replaced by name; user, password, host and parameters stay.
func withDatabase(url, name string) string {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		if u, err := neturl.Parse(url); err == nil {
			u.Path = "/" + name
			u.RawPath = ""
			return u.String()
		}
	}
	// Keyword/value: a later keyword wins.
	return url + " dbname='" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(name) + "'"
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes s as an SQL string literal (standard_conforming_strings on).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
