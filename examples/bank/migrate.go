package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/uno-framework/uno/examples/bank/ent/migrate"
)

// Migrate creates the accounts and transfers tables on db, or upgrades them to match
// the schemas, through ent's migration engine; it never touches another table. It runs
// on database/sql because ent's migration engine reads column types from
// database/sql rows.
func Migrate(ctx context.Context, db *sql.DB) error {
	if db == nil {
		return errors.New("bank: no database to migrate")
	}
	drv := entsql.OpenDB(dialect.Postgres, db)
	if err := migrate.NewSchema(drv).Create(ctx, migrate.WithForeignKeys(true)); err != nil {
		return fmt.Errorf("bank: migrate: %w", err)
	}
	return nil
}

// MigratePool runs [Migrate] on a database/sql view of pool, which stays open.
func MigratePool(ctx context.Context, pool *pgxpool.Pool) error {
	if pool == nil {
		return errors.New("bank: no pool to migrate")
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return Migrate(ctx, db)
}
