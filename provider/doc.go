// Package provider is the entry point of uno: a validated [Config], the factory [New],
// and the [Provider] it returns — a pgx connection pool (see package pool) with a
// database/sql view over the same connections, health reports and database
// administration.
//
// A Config comes from [DefaultConfig] plus assignments, [ParseConfig] (a postgres:// URL
// or a keyword/value string), [ConfigFromEnv] (DATABASE_URL, else the libpq PG*
// variables) or [ConfigFromMap] (snake_case keys, and the legacy db_* keys). Every
// constructor validates: problems come back together, as [ValidationErrors], each
// naming the field at fault.
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
//		return err // a *provider.ConnectError naming host, port and database
//	}
//	defer p.Close()
//
// The seed's protocols are the small interfaces [DatabaseProvider], [ConnectionPool],
// [TransactionManager], [DatabaseManager] and [QueryExecutor]; "sync" connections of
// the seed are [Provider.DB] (database/sql), "async" ones are [Provider.Pool] (pgx).
package provider
