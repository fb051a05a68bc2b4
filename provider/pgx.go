package provider

import (
	"errors"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// connParamSSLPassword is the ConnParams key of the TLS key's password, a secret.
const connParamSSLPassword = "sslpassword"

// Keys of libpq's TCP keepalive settings, which pgx does not read: uno applies them to
// the socket itself.
const (
	keepalives         = "keepalives"
	keepalivesIdle     = "keepalives_idle"
	keepalivesInterval = "keepalives_interval"
	keepalivesCount    = "keepalives_count"
)

// connParamKeys are the keys ConnParams accepts: the connection settings of pgconn, pgx
// and pgxpool that Config has no field for, and libpq's keepalives.
var connParamKeys = []string{
	"passfile", "service", "servicefile", "target_session_attrs", connParamSSLPassword,
	"sslcertmode", "sslsni", "sslnegotiation", "channel_binding", "require_auth",
	"krbsrvname", "krbspn", "min_protocol_version", "max_protocol_version",
	"statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode",
	"pool_min_idle_conns", "pool_max_conn_lifetime_jitter", "pool_ping_timeout",
	keepalives, keepalivesIdle, keepalivesInterval, keepalivesCount,
}

// unsupportedParams are libpq connection keywords pgx does not implement: passed on,
// they would reach the server as unknown settings.
var unsupportedParams = map[string]bool{
	"hostaddr": true, "load_balance_hosts": true, "sslcrl": true, "sslcrldir": true,
	"gssencmode": true, "gsslib": true, "gssdelegation": true, "requiressl": true,
	"tcp_user_timeout": true, "replication": true, "ssl_min_protocol_version": true,
	"ssl_max_protocol_version": true, "sslcompression": true, "requirepeer": true,
	"fallback_application_name": true, "client_encoding": true,
}

// isConnParam reports whether k is a connection setting rather than a server setting.
func isConnParam(k string) bool {
	_, field := fieldKinds[k]
	_, alias := textAliases[k]
	return field || alias || unsupportedParams[k] || slices.Contains(connParamKeys, k)
}

// checkConnParam returns what is wrong with one ConnParams entry, or "".
func checkConnParam(k, v string) string {
	switch {
	case !slices.Contains(connParamKeys, k):
		if unsupportedParams[k] {
			return "is a libpq setting pgx does not support; remove it"
		}
		if _, field := fieldKinds[k]; field || textAliases[k] != "" || k == "dbname" {
			return "has a Config field of its own; set it there"
		}
		return "is not a connection setting pgx knows; server settings go into RuntimeParams"
	case strings.IndexByte(v, 0) >= 0:
		return "must not contain a NUL byte"
	case k == keepalives:
		if v != "0" && v != "1" {
			return "must be 0 or 1"
		}
	case k == keepalivesIdle || k == keepalivesInterval || k == keepalivesCount:
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > math.MaxInt32 {
			return "must be a whole number, 0 or more"
		}
	}
	return ""
}

// PgxPoolConfig returns the pgxpool configuration [New] uses for c, after validating
// c. pgx parses the connection settings (pgconn.ParseConfig); the password is set on
// the result directly, never written into a connection string.
//
// Environment: nothing here reads environment variables ([ConfigFromEnv] is the one
// place that does). Every setting pgx would otherwise take from a PG* variable or a
// default file is given explicitly from c; files are read only where c names them
// (passfile, service and servicefile, TLS files). With a service, settings that
// neither c nor the service file give fall back to pgx's defaults.
func (c Config) PgxPoolConfig() (*pgxpool.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.buildPgxConfig()
}

// buildPgxConfig has pgxpool.ParseConfig parse the connection c describes, without
// validating c first.
func (c Config) buildPgxConfig() (*pgxpool.Config, error) {
	var dsn strings.Builder
	kv := func(k, v string) {
		dsn.WriteString(k)
		dsn.WriteString("='")
		dsn.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
		dsn.WriteString("' ")
	}
	if strings.TrimSpace(c.Host) != "" {
		hosts := splitHosts(c.Host)
		names := make([]string, len(hosts))
		ports := make([]string, len(hosts))
		anyPort := false
		for i, hp := range hosts {
			names[i] = hp.host
			switch {
			case hp.port > 0:
				ports[i] = strconv.Itoa(hp.port)
			case c.Port > 0:
				ports[i] = strconv.Itoa(c.Port)
			}
			anyPort = anyPort || ports[i] != ""
		}
		kv("host", strings.Join(names, ","))
		if anyPort {
			kv("port", strings.Join(ports, ","))
		}
	} else if c.Port > 0 {
		kv("port", strconv.Itoa(c.Port))
	}
	if c.User != "" {
		kv("user", c.User)
	}
	if c.Database != "" {
		kv("dbname", c.Database)
	}
	_, service := c.ConnParams["service"]
	if !service {
		kv("password", "") // the password is set below; this keeps PGPASSWORD out
	}
	if c.SSLMode != "" {
		kv("sslmode", c.SSLMode)
	}
	kv("sslrootcert", c.SSLRootCert)
	kv("sslcert", c.SSLCert)
	kv("sslkey", c.SSLKey)
	// Explicit defaults, so that no PG* variable (nor ~/.pgpass) stands in for them.
	explicit := map[string]string{
		"passfile": "", "target_session_attrs": "any", "sslcertmode": "allow", connParamSSLPassword: "",
		"sslsni": "", "sslnegotiation": "", "min_protocol_version": "", "max_protocol_version": "",
		"channel_binding": "", "require_auth": "",
	}
	for k, v := range c.ConnParams {
		explicit[k] = v
	}
	for _, k := range []string{keepalives, keepalivesIdle, keepalivesInterval, keepalivesCount} {
		delete(explicit, k)
	}
	for _, k := range slices.Sorted(maps.Keys(explicit)) {
		kv(k, explicit[k])
	}

	pc, err := pgxpool.ParseConfig(dsn.String())
	if err != nil {
		return nil, err
	}
	cc := pc.ConnConfig
	if c.Password != "" {
		cc.Password = c.Password
	}
	cc.ConnectTimeout = c.ConnectTimeout
	cc.DialFunc = c.dialer().DialContext
	cc.RuntimeParams = make(map[string]string, len(c.RuntimeParams)+1)
	if c.ApplicationName != "" {
		cc.RuntimeParams["application_name"] = c.ApplicationName
	}
	for k, v := range c.RuntimeParams {
		cc.RuntimeParams[k] = v
	}
	pc.MaxConns = int32(c.PoolSize)
	pc.MinConns = int32(c.MinConns)
	pc.MaxConnLifetime = c.MaxConnLifetime // zero: no limit
	pc.MaxConnIdleTime = c.MaxConnIdleTime
	if pc.MaxConnIdleTime == 0 {
		pc.MaxConnIdleTime = math.MaxInt64 // pgxpool would close every idle connection
	}
	if c.HealthCheckPeriod > 0 {
		pc.HealthCheckPeriod = c.HealthCheckPeriod
	}
	return pc, nil
}

// dialer returns the dialer of c's connections: pgx's default (TCP keepalive every 5
// minutes), adjusted by libpq's keepalives settings in ConnParams.
func (c Config) dialer() *net.Dialer {
	d := &net.Dialer{KeepAlive: 5 * time.Minute}
	seconds := func(k string) time.Duration {
		n, _ := strconv.Atoi(c.ConnParams[k])
		return time.Duration(n) * time.Second
	}
	if c.ConnParams[keepalives] == "0" {
		d.KeepAlive = -1
		return d
	}
	cfg := net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
	set := false
	if _, ok := c.ConnParams[keepalivesIdle]; ok {
		cfg.Idle, set = seconds(keepalivesIdle), true
	}
	if _, ok := c.ConnParams[keepalivesInterval]; ok {
		cfg.Interval, set = seconds(keepalivesInterval), true
	}
	if v, ok := c.ConnParams[keepalivesCount]; ok {
		cfg.Count, _ = strconv.Atoi(v)
		set = true
	}
	if set {
		d.KeepAliveConfig = cfg
	}
	return d
}

// pgxRejects starts the message of a problem pgx found.
const pgxRejects = "pgx rejects it: "

// syntaxError reports whether pgconn.ParseConfig failed to split the connection string
// itself, rather than refusing one of its settings.
func syntaxError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to parse as URL") || strings.Contains(msg, "failed to parse as keyword/value")
}

// pgxConfigProblem turns pgx's refusal of a configuration into a FieldError naming the
// setting at fault. The message is pgx's own, without the connection string it quotes;
// the cause is added only for files (TLS, service), whose errors hold no setting: the
// others may quote any part of the string, the password included.
func pgxConfigProblem(err error) *FieldError {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+3:]
		}
		if inner := errors.Unwrap(pe); inner != nil {
			msg = strings.TrimSuffix(msg, " ("+inner.Error()+")")
			if strings.Contains(msg, "TLS") || strings.Contains(msg, "service") {
				msg += ": " + inner.Error()
			}
		}
	}
	path := "connection"
	switch {
	case strings.Contains(msg, "TLS"):
		path = keySSLMode
	case strings.Contains(msg, "port"):
		path = keyPort
	default:
		for _, k := range connParamKeys {
			if strings.Contains(msg, k) {
				path = keyConnParams + "." + k
				break
			}
		}
	}
	return &FieldError{Path: path, Message: pgxRejects + msg}
}
