// Package provider is the entry point of uno: a validated [Config], the factory [New],
// and the [Provider] it returns — a pgx connection pool (see package pool) with health
// reports and database administration. The provider knows nothing of transactions:
// code that must join the ctx's transaction runs through a txmanager.Manager built on
// [Provider.Pool] (Querier for pgx, entdriver for ent, sqldriver for database/sql).
//
// A Config comes from [DefaultConfig] plus assignments, [ParseConfig] (a postgres:// URL
// or a keyword/value string), [ConfigFromEnv] (DATABASE_URL, else the libpq PG*
// variables) or [ConfigFromMap] (snake_case keys, and the legacy db_* keys). Every
// constructor validates: problems come back together, as [ValidationErrors], each
// naming the field at fault. pgx parses and judges the connection settings
// (pgconn.ParseConfig), so whatever pgx accepts works: several hosts tried in order,
// target_session_attrs, passfile, service, keepalives, and the rest (see
// [Config.ConnParams]).
//
// The environment has one rule: [ConfigFromEnv] is the only place that reads it. A
// Config means what its fields say; nothing else — not PGPASSWORD, not PGSSLMODE, not
// ~/.pgpass — fills in what it leaves out. Files are read only where the Config names
// them (passfile, service, TLS files).
//
// [New] connects with backoff until its ctx ends or, when ctx has no deadline, until
// [Config.ConnectRetryTimeout] (1 minute by default) has passed; it returns a
// [*pool.ConnectError] naming the servers, why the attempts stopped and what to do.
//
// The password never leaves a Config by accident: String, GoString, every fmt verb,
// slog (LogValue) and JSON print it as "xxxxx", and errors — including the connection
// errors of pgx — have it removed.
//
//	cfg, err := provider.ParseConfig("postgres://app:secret@db:5432/shop?pool_size=20")
//	if err != nil {
//		return err // e.g. "provider: invalid config: pool_size: must be between 1 and 10000"
//	}
//	p, err := provider.New(ctx, cfg, provider.WithLogger(logger))
//	if err != nil {
//		return err // a *pool.ConnectError naming the servers, the database and the user
//	}
//	defer p.Close()
//
// The seed's protocols are the small interfaces [DatabaseProvider], [ConnectionPool],
// [TransactionManager] and [DatabaseManager]; its query executor is
// txmanager.Querier, the one querier interface of the module. "Sync" connections of the
// seed are a *sql.DB from sqldriver.Open (database/sql that joins the ctx's
// transaction), "async" ones are [Provider.Pool] (pgx).
package provider
