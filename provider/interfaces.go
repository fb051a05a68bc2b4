package provider

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/pool"
)

// ConnectionPool hands out connections: *pool.Pool satisfies it.
type ConnectionPool interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
	Ping(ctx context.Context) error
	State() pool.State
	Stats() pool.Stats
	Close()
}

// DatabaseManager creates, drops and looks up databases: *Admin satisfies it.
type DatabaseManager interface {
	CreateDatabase(ctx context.Context, name string, opts ...CreateOption) error
	DropDatabase(ctx context.Context, name string, opts ...DropOption) error
	DatabaseExists(ctx context.Context, name string) (bool, error)
}

// DatabaseProvider gives access to a database: *Provider satisfies it. Statements that
// must join the ctx's transaction go through a txmanager.Manager built on Pool (its
// Querier, entdriver, sqldriver), not through the provider.
type DatabaseProvider interface {
	Pool() *pgxpool.Pool
	Health(ctx context.Context) (HealthReport, error)
	HealthCheck(ctx context.Context) error
	Admin() *Admin
	Close()
}

// TransactionManager runs fn in a transaction carried by the context fn receives. O is
// the manager's option type: *txmanager.Manager satisfies
// TransactionManager[txmanager.Option].
type TransactionManager[O any] interface {
	Do(ctx context.Context, fn func(ctx context.Context) error, opts ...O) error
}

var (
	_ DatabaseProvider = (*Provider)(nil)
	_ DatabaseManager  = (*Admin)(nil)
	_ ConnectionPool   = (*pool.Pool)(nil)
)
