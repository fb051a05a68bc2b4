package compat

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/sqldriver"
)

// ConnectionConfig is the legacy connection configuration.
//
// Deprecated: use [provider.Config], built with provider.DefaultConfig,
// provider.ParseConfig, provider.ConfigFromEnv or provider.ConfigFromMap (which also
// accepts the legacy keys db_host, db_port, db_role, db_name, db_user_pw, pool_size).
type ConnectionConfig struct {
	DBHost   string // provider.Config.Host
	DBPort   int    // provider.Config.Port
	DBRole   string // provider.Config.User
	DBName   string // provider.Config.Database
	DBUserPw string // provider.Config.Password; never printed
	PoolSize int    // provider.Config.PoolSize
}

// ConnectionConfigFromMap reads a legacy settings map (db_host, db_port, db_role,
// db_name, db_user_pw, pool_size, or the new keys) through provider.ConfigFromMap.
//
// Deprecated: use [provider.ConfigFromMap].
func ConnectionConfigFromMap(m map[string]any) (ConnectionConfig, error) {
	cfg, err := provider.ConfigFromMap(m)
	if err != nil {
		return ConnectionConfig{}, err
	}
	return ConnectionConfig{
		DBHost: cfg.Host, DBPort: cfg.Port, DBRole: cfg.User, DBName: cfg.Database,
		DBUserPw: cfg.Password, PoolSize: cfg.PoolSize,
	}, nil
}

// Config returns the equivalent provider.Config: provider.DefaultConfig with the
// non-zero fields of c.
//
// Deprecated: use [provider.Config] directly.
func (c ConnectionConfig) Config() provider.Config {
	cfg := provider.DefaultConfig()
	if c.DBHost != "" {
		cfg.Host = c.DBHost
	}
	if c.DBPort != 0 {
		cfg.Port = c.DBPort
	}
	if c.DBRole != "" {
		cfg.User = c.DBRole
	}
	if c.DBName != "" {
		cfg.Database = c.DBName
	}
	if c.DBUserPw != "" {
		cfg.Password = c.DBUserPw
	}
	if c.PoolSize != 0 {
		cfg.PoolSize = c.PoolSize
	}
	return cfg
}

func (c ConnectionConfig) shownPassword() string {
	if c.DBUserPw == "" {
		return ""
	}
	return "xxxxx"
}

// String describes c with the password replaced by "xxxxx".
func (c ConnectionConfig) String() string {
	return fmt.Sprintf("compat.ConnectionConfig{DBHost:%s DBPort:%d DBRole:%s DBName:%s DBUserPw:%s PoolSize:%d}",
		c.DBHost, c.DBPort, c.DBRole, c.DBName, c.shownPassword(), c.PoolSize)
}

// GoString is like String, as a Go literal.
func (c ConnectionConfig) GoString() string {
	return fmt.Sprintf("compat.ConnectionConfig{DBHost:%s, DBPort:%d, DBRole:%s, DBName:%s, DBUserPw:%s, PoolSize:%d}",
		strconv.Quote(c.DBHost), c.DBPort, strconv.Quote(c.DBRole), strconv.Quote(c.DBName),
		strconv.Quote(c.shownPassword()), c.PoolSize)
}

// Format prints String for every verb but %#v, which prints GoString: no verb shows
// the password.
func (c ConnectionConfig) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// LogValue implements slog.LogValuer without the password.
func (c ConnectionConfig) LogValue() slog.Value { return c.Config().LogValue() }

// UnoDatabaseProvider is the legacy database provider.
//
// Deprecated: use [provider.New], which returns a *provider.Provider with the same
// methods.
type UnoDatabaseProvider struct {
	p        *provider.Provider
	tm       *txmanager.Manager
	db       *sql.DB
	warnOnce sync.Once
}

var (
	_ provider.DatabaseProvider = (*UnoDatabaseProvider)(nil)
	_ provider.DatabaseManager  = (*UnoDBManager)(nil)
)

// NewUnoDatabaseProvider connects as provider.New(ctx, cfg.Config(), opts...) does and
// logs, once, that the legacy API is deprecated.
//
// Deprecated: use [provider.New].
func NewUnoDatabaseProvider(ctx context.Context, cfg ConnectionConfig, opts ...provider.Option) (*UnoDatabaseProvider, error) {
	p, err := provider.New(ctx, cfg.Config(), opts...)
	if err != nil {
		return nil, err
	}
	tm, err := txmanager.New(p.Pool(), txmanager.Config{Logger: p.Logger()})
	if err != nil {
		p.Close()
		return nil, err
	}
	u := &UnoDatabaseProvider{p: p, tm: tm, db: sqldriver.Open(tm)}
	u.warn()
	return u, nil
}

func (u *UnoDatabaseProvider) warn() {
	u.warnOnce.Do(func() {
		u.p.Logger().Warn("compat: UnoDatabaseProvider and ConnectionConfig are deprecated",
			slog.String("use_instead", "provider.New with a provider.Config"))
	})
}

// Provider returns the provider this legacy value forwards to.
//
// Deprecated: use [provider.New] and keep the *provider.Provider.
func (u *UnoDatabaseProvider) Provider() *provider.Provider { u.warn(); return u.p }

// Pool returns the pgx pool.
//
// Deprecated: use [provider.Provider.Pool].
func (u *UnoDatabaseProvider) Pool() *pgxpool.Pool { u.warn(); return u.p.Pool() }

// DB returns the legacy "sync" connection: a *sql.DB whose statements run on the
// transaction their ctx carries, else on the pool.
//
// Deprecated: use [sqldriver.Open] over a [txmanager.Manager] built on
// [provider.Provider.Pool].
func (u *UnoDatabaseProvider) DB() *sql.DB { u.warn(); return u.db }

// Querier returns the ctx's transaction, else the pool.
//
// Deprecated: use [txmanager.Manager.Querier] of a manager built on
// [provider.Provider.Pool].
func (u *UnoDatabaseProvider) Querier(ctx context.Context) txmanager.Querier {
	u.warn()
	return u.tm.Querier(ctx)
}

// Health reports on the server.
//
// Deprecated: use [provider.Provider.Health].
func (u *UnoDatabaseProvider) Health(ctx context.Context) (provider.HealthReport, error) {
	u.warn()
	return u.p.Health(ctx)
}

// HealthCheck makes one round trip to the server.
//
// Deprecated: use [provider.Provider.HealthCheck].
func (u *UnoDatabaseProvider) HealthCheck(ctx context.Context) error {
	u.warn()
	return u.p.HealthCheck(ctx)
}

// Admin returns the database administration.
//
// Deprecated: use [provider.Provider.Admin].
func (u *UnoDatabaseProvider) Admin() *provider.Admin { u.warn(); return u.p.Admin() }

// Close closes the provider.
//
// Deprecated: use [provider.Provider.Close].
func (u *UnoDatabaseProvider) Close() {
	u.warn()
	_ = u.db.Close() // holds no connection of its own: closing it cannot fail
	u.p.Close()
}

// String describes the provider without its password.
func (u *UnoDatabaseProvider) String() string {
	return "compat.UnoDatabaseProvider{" + u.p.Config().String() + "}"
}

// Format prints String for every verb.
func (u *UnoDatabaseProvider) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, u.String()) }

// UnoDBManager is the legacy database manager.
//
// Deprecated: use [provider.Admin], from (*provider.Provider).Admin.
type UnoDBManager struct {
	admin    *provider.Admin
	logger   *slog.Logger
	warnOnce sync.Once
}

// NewUnoDBManager returns the manager of the server p is connected to and logs, once,
// that it is deprecated.
//
// Deprecated: use (*provider.Provider).Admin.
func NewUnoDBManager(p *UnoDatabaseProvider) *UnoDBManager {
	m := &UnoDBManager{admin: p.p.Admin(), logger: p.p.Logger()}
	m.warn()
	return m
}

func (m *UnoDBManager) warn() {
	m.warnOnce.Do(func() {
		m.logger.Warn("compat: UnoDBManager is deprecated",
			slog.String("use_instead", "(*provider.Provider).Admin()"))
	})
}

// CreateDatabase creates the database name.
//
// Deprecated: use [provider.Admin.CreateDatabase].
func (m *UnoDBManager) CreateDatabase(ctx context.Context, name string, opts ...provider.CreateOption) error {
	m.warn()
	return m.admin.CreateDatabase(ctx, name, opts...)
}

// DropDatabase drops the database name.
//
// Deprecated: use [provider.Admin.DropDatabase].
func (m *UnoDBManager) DropDatabase(ctx context.Context, name string, opts ...provider.DropOption) error {
	m.warn()
	return m.admin.DropDatabase(ctx, name, opts...)
}

// DatabaseExists reports whether the database name exists.
//
// Deprecated: use [provider.Admin.DatabaseExists].
func (m *UnoDBManager) DatabaseExists(ctx context.Context, name string) (bool, error) {
	m.warn()
	return m.admin.DatabaseExists(ctx, name)
}
