package provider

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/pool"
)

// QueryExecutor runs statements: *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it, and so
// does the transaction-aware querier of package txmanager (the same method set).
type QueryExecutor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
}

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

// DatabaseProvider gives access to a database: *Provider satisfies it.
type DatabaseProvider interface {
	Pool() *pgxpool.Pool
	DB() *sql.DB
	Querier(ctx context.Context) QueryExecutor
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
	_ QueryExecutor    = (*pgxpool.Pool)(nil)
	_ QueryExecutor    = (*pgx.Conn)(nil)
	_ QueryExecutor    = (pgx.Tx)(nil)
)
