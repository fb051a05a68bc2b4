package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrDatabaseExists is matched (errors.Is) by the error of [Admin.CreateDatabase] when
// the database already exists.
var ErrDatabaseExists = errors.New("provider: database already exists")

// ErrDatabaseNotFound is matched (errors.Is) by the error of [Admin.DropDatabase] when
// the database does not exist (and [DropIfExists] was not given).
var ErrDatabaseNotFound = errors.New("provider: database does not exist")

// Admin creates, drops and looks up databases on a server. Database names are quoted as
// identifiers, so any name — with quotes, spaces or capitals — is safe and kept as is.
// CREATE and DROP DATABASE cannot run inside a transaction: give Admin a pool or a
// connection, not a transaction.
type Admin struct {
	db *pgxpool.Pool
}

// NewAdmin returns an Admin that runs its statements on pool.
func NewAdmin(db *pgxpool.Pool) *Admin {
	return &Admin{db: db}
}

// CreateOption adjusts [Admin.CreateDatabase].
type CreateOption func(*createOptions)

type createOptions struct{ template, owner string }

// CreateWithTemplate creates the database as a copy of the template database name.
func CreateWithTemplate(name string) CreateOption {
	return func(o *createOptions) { o.template = name }
}

// CreateWithOwner makes role the owner of the new database.
func CreateWithOwner(role string) CreateOption {
	return func(o *createOptions) { o.owner = role }
}

// DropOption adjusts [Admin.DropDatabase].
type DropOption func(*dropOptions)

type dropOptions struct{ ifExists, force bool }

// DropIfExists makes dropping a database that does not exist a success.
func DropIfExists() DropOption { return func(o *dropOptions) { o.ifExists = true } }

// DropForce terminates the sessions connected to the database before dropping it
// (DROP DATABASE ... WITH (FORCE), PostgreSQL 13 and later).
func DropForce() DropOption { return func(o *dropOptions) { o.force = true } }

// checkName rejects names PostgreSQL would refuse or silently change.
func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("provider: %s name must not be empty", what)
	case len(name) > 63:
		return fmt.Errorf("provider: %s name %q is longer than 63 bytes; PostgreSQL would truncate it", what, name[:63]+"...")
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("provider: %s name must not contain a NUL byte", what)
	}
	return nil
}

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// CreateDatabase creates the database name. If it exists already, the error matches
// [ErrDatabaseExists].
func (a *Admin) CreateDatabase(ctx context.Context, name string, opts ...CreateOption) error {
	if err := checkName("database", name); err != nil {
		return err
	}
	var o createOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	stmt := "CREATE DATABASE " + quoteIdent(name)
	if o.template != "" {
		if err := checkName("template", o.template); err != nil {
			return err
		}
		stmt += " TEMPLATE " + quoteIdent(o.template)
	}
	if o.owner != "" {
		if err := checkName("owner", o.owner); err != nil {
			return err
		}
		stmt += " OWNER " + quoteIdent(o.owner)
	}
	if _, err := a.db.Exec(ctx, stmt); err != nil {
		if pgCode(err) == "42P04" {
			return fmt.Errorf("provider: create database %q: %w (%w)", name, ErrDatabaseExists, err)
		}
		return fmt.Errorf("provider: create database %q: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name. If it does not exist the error matches
// [ErrDatabaseNotFound], unless [DropIfExists] is given. Without [DropForce] it fails
// while sessions are connected to the database.
func (a *Admin) DropDatabase(ctx context.Context, name string, opts ...DropOption) error {
	if err := checkName("database", name); err != nil {
		return err
	}
	var o dropOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	stmt := "DROP DATABASE "
	if o.ifExists {
		stmt += "IF EXISTS "
	}
	stmt += quoteIdent(name)
	if o.force {
		stmt += " WITH (FORCE)"
	}
	if _, err := a.db.Exec(ctx, stmt); err != nil {
		if pgCode(err) == "3D000" {
			return fmt.Errorf("provider: drop database %q: %w (%w)", name, ErrDatabaseNotFound, err)
		}
		return fmt.Errorf("provider: drop database %q: %w", name, err)
	}
	return nil
}

// DatabaseExists reports whether the database name exists.
func (a *Admin) DatabaseExists(ctx context.Context, name string) (bool, error) {
	var exists bool
	err := a.db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("provider: look up database %q: %w", name, err)
	}
	return exists, nil
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
