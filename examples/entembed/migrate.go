package entembed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	entschema "entgo.io/ent/dialect/sql/schema"

	"github.com/uno-framework/uno/examples/entembed/ent/migrate"
	unoschema "github.com/uno-framework/uno/schema"
)

// Migrate creates or upgrades the application's tables and uno's in one ent migration
// on db (ent's migration engine needs database/sql).
func Migrate(ctx context.Context, db *sql.DB) error {
	if db == nil {
		return errors.New("entembed: no database to migrate")
	}
	drv := entsql.OpenDB(dialect.Postgres, db)
	if err := migrate.NewSchema(drv).Create(ctx, entschema.WithDiffHook(unoschema.DiffHook)); err != nil {
		return fmt.Errorf("entembed: migrate: %w", err)
	}
	return nil
}
