package schema

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	entschema "entgo.io/ent/dialect/sql/schema"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	entmigrate "github.com/uno-framework/uno/ent/migrate"
)

// MigrateLockID is the key of the PostgreSQL session advisory lock Migrate holds while
// it inspects and changes the schema, so that processes starting at the same time
// migrate one after the other instead of racing to create the same tables.
const MigrateLockID int64 = 0x756e6f5f736368 // "uno_sch"

// ErrNoDatabase is returned by Migrate when it is given no database to migrate.
var ErrNoDatabase = errors.New("schema: no database to migrate; pass a *provider.Provider or another value whose Pool() returns an open *pgxpool.Pool")

// Database is what Migrate runs on: a pgx pool. *provider.Provider satisfies it.
type Database interface {
	Pool() *pgxpool.Pool
}

// MigrateOption configures Migrate.
type MigrateOption func(*migrateConfig)

type migrateConfig struct {
	dropColumns bool
	dropIndexes bool
	logger      *slog.Logger
	// plan, when set, receives the statements of the migration instead of the database:
	// Migrate then changes nothing.
	plan func(cmds []string)
}

// WithDropColumns lets Migrate drop columns that no schema declares any more. Off by
// default: an upgrade never destroys data unless asked to.
func WithDropColumns() MigrateOption {
	return func(c *migrateConfig) { c.dropColumns = true }
}

// WithDropIndexes lets Migrate drop indexes (and unique constraints) that no schema
// declares any more. Off by default.
func WithDropIndexes() MigrateOption {
	return func(c *migrateConfig) { c.dropIndexes = true }
}

// WithLogger makes Migrate log each change it applies, and a summary, to logger
// (at Info level). By default Migrate logs nothing.
func WithLogger(logger *slog.Logger) MigrateOption {
	return func(c *migrateConfig) { c.logger = logger }
}

// Migrate creates uno's own tables (uno_*), or upgrades them to match the schemas of
// this package: it adds tables, columns, indexes, foreign keys and checks, and widens
// column types. It inspects and changes no other table. Running it again on an
// up-to-date database changes nothing, so applications can call it at every start.
//
// Migrate runs on one connection of db's pool, inside one transaction, while
// holding the session advisory lock [MigrateLockID]; concurrent callers wait for each
// other. It never drops columns or indexes unless [WithDropColumns] or
// [WithDropIndexes] is given.
func Migrate(ctx context.Context, db Database, opts ...MigrateOption) (err error) {
	if db == nil {
		return ErrNoDatabase
	}
	pool := db.Pool()
	if pool == nil {
		return ErrNoDatabase
	}
	// ent's migration engine speaks database/sql: it gets a view of the pool of its
	// own, used for this migration only and closed when it ends.
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	var cfg migrateConfig
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}

	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("schema: get a connection to migrate on: %w", err)
	}
	defer func() { err = errors.Join(err, conn.Close()) }()

	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", MigrateLockID); err != nil {
		return fmt.Errorf("schema: take the migration lock %d: %w", MigrateLockID, err)
	}
	defer func() { err = errors.Join(err, unlock(ctx, conn)) }()

	var applied int
	migrateOpts := []entschema.MigrateOption{
		entmigrate.WithDropColumn(cfg.dropColumns),
		entmigrate.WithDropIndex(cfg.dropIndexes),
		entmigrate.WithForeignKeys(true),
		entschema.WithDiffHook(DiffHook),
		entschema.WithApplyHook(func(next entschema.Applier) entschema.Applier {
			return entschema.ApplyFunc(func(ctx context.Context, conn dialect.ExecQuerier, plan *migrate.Plan) error {
				applied = len(plan.Changes)
				if cfg.plan != nil {
					cmds := make([]string, len(plan.Changes))
					for i, c := range plan.Changes {
						cmds[i] = c.Cmd
					}
					cfg.plan(cmds)
					return nil
				}
				if cfg.logger != nil {
					for _, c := range plan.Changes {
						cfg.logger.LogAttrs(ctx, slog.LevelInfo, "schema: applying change",
							slog.String("comment", c.Comment), slog.String("sql", c.Cmd))
					}
				}
				return next.Apply(ctx, conn, plan)
			})
		}),
	}
	drv := &connDriver{
		Driver: entsql.NewDriver(dialect.Postgres, entsql.Conn{ExecQuerier: conn}),
		conn:   conn,
	}
	if err := entmigrate.NewSchema(drv).Create(ctx, migrateOpts...); err != nil {
		return fmt.Errorf("schema: migrate: %w", err)
	}
	if cfg.logger != nil {
		cfg.logger.LogAttrs(ctx, slog.LevelInfo, "schema: migrated", slog.Int("changes", applied))
	}
	return nil
}

// unlock releases the migration lock. If it cannot, the connection is discarded rather
// than returned to the pool still holding the lock.
func unlock(ctx context.Context, conn *sql.Conn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", MigrateLockID); err != nil {
		// Returning driver.ErrBadConn from Raw makes database/sql close the connection,
		// which ends the session and with it the lock.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("schema: release the migration lock %d (the connection was closed instead): %w", MigrateLockID, err)
	}
	return nil
}

// connDriver is an ent driver over a single *sql.Conn, so that the whole migration,
// transaction included, runs on the session that holds the advisory lock.
type connDriver struct {
	*entsql.Driver
	conn *sql.Conn
}

// Tx begins the migration's transaction on the driver's connection.
func (d *connDriver) Tx(ctx context.Context) (dialect.Tx, error) {
	tx, err := d.conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &entsql.Tx{Conn: entsql.Conn{ExecQuerier: tx}, Tx: tx}, nil
}

// Close does nothing: Migrate closes the connection itself.
func (d *connDriver) Close() error { return nil }

// MigratePool runs [Migrate] on pool, for code that holds a pgx pool rather than a
// *provider.Provider. The pool stays open.
func MigratePool(ctx context.Context, pool *pgxpool.Pool, opts ...MigrateOption) error {
	if pool == nil {
		return ErrNoDatabase
	}
	return Migrate(ctx, poolDatabase{pool}, opts...)
}

// poolDatabase is the Database of MigratePool.
type poolDatabase struct{ pool *pgxpool.Pool }

func (d poolDatabase) Pool() *pgxpool.Pool { return d.pool }
