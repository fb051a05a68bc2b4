package pgclone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// Prefix starts the name of every clone: uno_test_<UTC time>_<random>_<label>.
	Prefix = "uno_test_"
	dbTime = "20060102150405"

	// StaleAfter is the age past which a clone is taken for the leftover of a test
	// process that died, and dropped.
	StaleAfter = 24 * time.Hour

	// MaxIdentifier is the longest database name PostgreSQL keeps; longer ones are
	// truncated.
	MaxIdentifier = 63

	// lockKey is the advisory lock that serializes template creation (and the clean-up
	// of stale clones) among test processes sharing a server.
	lockKey int64 = 0x756e6f5f706774 // "uno_pgt"
)

// Template is a template database: its name, and how to fill it.
type Template struct {
	// Name is the template database's name. It must say what the template holds (a
	// version, a fingerprint of its migrations): a server keeps templates from run to
	// run, and one that exists is used as it is.
	Name string
	// Build fills the template, given the connection string of the database being
	// built; nil leaves it empty. It runs once per server, under the template lock.
	Build func(ctx context.Context, url string) error
}

// Marker is the comment a template puts on its public schema, so that a test can tell a
// database cloned from it.
func Marker(template string) string { return "uno pgtest template " + template }

// Clone creates a fresh database named for label from tpl — building tpl first if the
// server has none — and returns its name. adminURL is a connection string to any
// database of the server, as a user with the CREATEDB privilege.
func Clone(ctx context.Context, adminURL string, tpl Template, label string, logger *slog.Logger) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to the server to create a test database: %w", err)
	}
	defer conn.Close(context.Background())

	err = withLock(ctx, conn, func() error {
		if err := ensure(ctx, conn, adminURL, tpl, logger); err != nil {
			return err
		}
		DropStale(ctx, conn, time.Now(), logger)
		return nil
	})
	if err != nil {
		return "", err
	}

	name := Name(label, time.Now())
	create := "CREATE DATABASE " + Ident(name) + " TEMPLATE " + Ident(tpl.Name)
	for attempt := 1; ; attempt++ {
		_, err = conn.Exec(ctx, create)
		if err == nil {
			return name, nil
		}
		// 55006: someone is connected to the template. Nobody should be (it does not
		// allow connections), but a superuser may have been; wait for them to leave.
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt == 10 {
			return "", fmt.Errorf("create the test database %s from template %s "+
				"(the server's user needs the CREATEDB privilege): %w", name, tpl.Name, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("create the test database %s: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// withLock runs fn holding the session-level advisory lock that test processes sharing
// the server take to create templates.
func withLock(ctx context.Context, conn *pgx.Conn, fn func() error) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("take the template lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockKey)
	}()
	return fn()
}

// ensure creates tpl unless it exists. The caller holds the template lock.
func ensure(ctx context.Context, conn *pgx.Conn, adminURL string, tpl Template, logger *slog.Logger) error {
	exists, err := Exists(ctx, conn, tpl.Name)
	if err != nil || exists {
		return err
	}
	building := tpl.Name + "_building"
	if len(building) > MaxIdentifier {
		return fmt.Errorf("template name %q is too long: keep it under %d bytes", tpl.Name, MaxIdentifier-len("_building"))
	}
	if err := DropTemplate(ctx, conn, building); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+Ident(building)+
		" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		return fmt.Errorf("create the template database %s (the server's user needs the CREATEDB privilege): %w",
			tpl.Name, err)
	}
	url := WithDatabase(adminURL, building)
	if err := fill(ctx, url, tpl); err != nil {
		if derr := DropTemplate(context.WithoutCancel(ctx), conn, building); derr != nil {
			err = errors.Join(err, derr)
		}
		return err
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + Ident(building) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
		"ALTER DATABASE " + Ident(building) + " RENAME TO " + Ident(tpl.Name),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("finish the template database %s: %w", tpl.Name, err)
		}
	}
	logger.Info("pgclone: created the template database", "database", tpl.Name)
	return nil
}

// fill marks the template being built at url and runs tpl.Build on it.
func fill(ctx context.Context, url string, tpl Template) error {
	tconn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to the template database being built: %w", err)
	}
	_, err = tconn.Exec(ctx, "COMMENT ON SCHEMA public IS "+literal(Marker(tpl.Name)))
	_ = tconn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("mark the template database: %w", err)
	}
	if tpl.Build != nil {
		if err := tpl.Build(ctx, url); err != nil {
			return fmt.Errorf("build the template database %s: %w", tpl.Name, err)
		}
	}
	return nil
}

// DropTemplate drops the template database name if it exists.
func DropTemplate(ctx context.Context, conn *pgx.Conn, name string) error {
	exists, err := Exists(ctx, conn, name)
	if err != nil || !exists {
		return err
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + Ident(name) + " WITH IS_TEMPLATE false",
		"DROP DATABASE " + Ident(name) + " WITH (FORCE)",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("drop the template database %s: %w", name, err)
		}
	}
	return nil
}

// Exists reports whether the server has a database called name.
func Exists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var exists bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return exists, nil
}

// DropStale drops the clones older than StaleAfter: those of test processes that died
// before dropping theirs. It is best effort.
func DropStale(ctx context.Context, conn *pgx.Conn, now time.Time, logger *slog.Logger) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'uno\_test\_%'`)
	if err != nil {
		logger.Warn("pgclone: list old test databases", "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		logger.Warn("pgclone: list old test databases", "err", err)
		return
	}
	for _, name := range names {
		if !IsStale(name, now) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+Ident(name)+" WITH (FORCE)"); err != nil {
			logger.Warn("pgclone: drop a stale test database", "database", name, "err", err)
			continue
		}
		logger.Info("pgclone: dropped a stale test database", "database", name)
	}
}

// IsStale reports whether name is a clone made more than StaleAfter before now.
func IsStale(name string, now time.Time) bool {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok || len(rest) < len(dbTime) {
		return false
	}
	made, err := time.Parse(dbTime, rest[:len(dbTime)])
	return err == nil && now.Sub(made) > StaleAfter
}

// Name returns a new clone name for label.
func Name(label string, now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := Prefix + now.UTC().Format(dbTime) + "_" + hex.EncodeToString(b[:]) + "_" + Sanitize(label)
	if len(name) > MaxIdentifier {
		name = name[:MaxIdentifier]
	}
	return name
}

// Drop drops database name, closing the connections still on it.
func Drop(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to drop the test database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+Ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop the test database %s: %w", name, err)
	}
	return nil
}

// Sanitize lowercases s and replaces everything but ASCII letters and digits with _,
// for a database name.
func Sanitize(s string) string {
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

// WithDatabase returns the connection string url (a URL or a keyword/value string) with
// its database replaced by name; user, password, host and parameters stay.
func WithDatabase(url, name string) string {
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

// Ident quotes name as an SQL identifier.
func Ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes s as an SQL string literal (standard_conforming_strings on).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
