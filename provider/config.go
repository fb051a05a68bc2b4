package provider

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uno-framework/uno/internal/redact"
)

// Config is everything [New] needs to reach PostgreSQL and size the pool. Start from
// [DefaultConfig] (or a parser); a literal's zero values are not replaced by defaults.
// A zero duration means what its field's comment says: mostly "no limit", but for
// IdleValidationThreshold "validate every connection before every hand-out".
type Config struct {
	// Host is the server: a host name, an IP address or a Unix socket directory; or
	// several, separated by commas, tried in order until one accepts the connection (and
	// passes target_session_attrs, see ConnParams). An element may carry its own port
	// ("db2:5433", "[::1]:5433"); the others use Port. Required unless ConnParams names
	// a service.
	Host     string
	Port     int    // 1-65535; 0 only with a service, which then supplies it
	User     string // role to connect as; required unless ConnParams names a service
	Database string // database name; required unless ConnParams names a service
	Password string // never printed, logged or put in an error
	SSLMode  string // disable, allow, prefer, require, verify-ca or verify-full; "" only with a service

	// TLS files, as libpq's sslrootcert, sslcert and sslkey. Optional.
	SSLRootCert, SSLCert, SSLKey string

	PoolSize int // maximum number of connections, 1-10000
	MinConns int // connections kept open even when idle, 0-PoolSize

	ConnectTimeout          time.Duration // limit for opening one connection (all hosts); 0: none
	ConnectRetryTimeout     time.Duration // how long New keeps retrying when its ctx has no deadline; 0: until ctx ends
	AcquireTimeout          time.Duration // limit for waiting for a pooled connection; 0: none but the ctx
	HealthCheckPeriod       time.Duration // period of the pool's health monitor; 0: no monitor
	MaxConnLifetime         time.Duration // connections older than this are closed; 0: no limit
	MaxConnIdleTime         time.Duration // connections idle longer than this are closed; 0: no limit
	IdleValidationThreshold time.Duration // connections idle this long are pinged before use; 0: all

	ApplicationName string // reported in pg_stat_activity.application_name

	// RuntimeParams are further server settings sent when connecting, such as
	// search_path or statement_timeout.
	RuntimeParams map[string]string

	// ConnParams are the connection settings of libpq and pgx that have no field of
	// their own, passed to pgx as given: target_session_attrs, passfile, service,
	// servicefile, sslpassword (hidden like the password), sslcertmode, sslsni,
	// sslnegotiation, channel_binding, require_auth, krbsrvname, krbspn,
	// min_protocol_version, max_protocol_version, statement_cache_capacity,
	// description_cache_capacity, default_query_exec_mode, pool_min_idle_conns,
	// pool_max_conn_lifetime_jitter and pool_ping_timeout; and libpq's TCP keepalive
	// settings keepalives (0 or 1), keepalives_idle, keepalives_interval (seconds) and
	// keepalives_count, which uno applies to the connection's socket.
	ConnParams map[string]string
}

// SSL modes, as in libpq.
const (
	SSLModeDisable    = "disable"
	SSLModeAllow      = "allow"
	SSLModePrefer     = "prefer"
	SSLModeRequire    = "require"
	SSLModeVerifyCA   = "verify-ca"
	SSLModeVerifyFull = "verify-full"
)

var sslModes = []string{SSLModeDisable, SSLModeAllow, SSLModePrefer, SSLModeRequire, SSLModeVerifyCA, SSLModeVerifyFull}

// MaxPoolSize is the largest accepted [Config.PoolSize].
const MaxPoolSize = 10000

// DefaultConfig returns the defaults: localhost:5432, user and database "postgres",
// sslmode prefer, 10 connections, connect timeout 5s, connect retries for at most 1m,
// acquire timeout 30s, health check every 30s, connections recycled after 1h or 30m idle, validated after 1s idle,
// application name "uno".
func DefaultConfig() Config {
	return Config{
		Host:                    "localhost",
		Port:                    5432,
		User:                    "postgres",
		Database:                "postgres",
		SSLMode:                 SSLModePrefer,
		PoolSize:                10,
		MinConns:                0,
		ConnectTimeout:          5 * time.Second,
		ConnectRetryTimeout:     time.Minute,
		AcquireTimeout:          30 * time.Second,
		HealthCheckPeriod:       30 * time.Second,
		MaxConnLifetime:         time.Hour,
		MaxConnIdleTime:         30 * time.Minute,
		IdleValidationThreshold: time.Second,
		ApplicationName:         "uno",
	}
}

// Paths of the fields, as used in [FieldError.Path] and by [ConfigFromMap].
const (
	keyHost                    = "host"
	keyPort                    = "port"
	keyUser                    = "user"
	keyDatabase                = "database"
	keyPassword                = "password"
	keySSLMode                 = "sslmode"
	keySSLRootCert             = "sslrootcert"
	keySSLCert                 = "sslcert"
	keySSLKey                  = "sslkey"
	keyPoolSize                = "pool_size"
	keyMinConns                = "min_conns"
	keyConnectTimeout          = "connect_timeout"
	keyConnectRetryTimeout     = "connect_retry_timeout"
	keyAcquireTimeout          = "acquire_timeout"
	keyHealthCheckPeriod       = "health_check_period"
	keyMaxConnLifetime         = "max_conn_lifetime"
	keyMaxConnIdleTime         = "max_conn_idle_time"
	keyIdleValidationThreshold = "idle_validation_threshold"
	keyApplicationName         = "application_name"
	keyRuntimeParams           = "runtime_params"
	keyConnParams              = "conn_params"
)

// reservedParams may not be set through RuntimeParams: they have fields of their own or
// are part of the connection protocol.
var reservedParams = map[string]string{
	"user": "User", "database": "Database", "dbname": "Database", "password": "Password",
	"host": "Host", "port": "Port", "sslmode": "SSLMode", "replication": "",
}

// Validate checks every field and returns all problems at once as [ValidationErrors]
// (nil if there are none). Once the fields are sound it also has pgx parse the
// connection they describe (pgconn.ParseConfig), which checks ConnParams and reads the
// files the Config names (TLS certificates, service file).
func (c Config) Validate() error {
	var errs ValidationErrors
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	noNUL := func(path, v string) bool {
		if strings.IndexByte(v, 0) >= 0 {
			add(path, "must not contain a NUL byte")
			return false
		}
		return true
	}
	service := c.ConnParams["service"] != ""

	switch {
	case strings.TrimSpace(c.Host) == "":
		if !service {
			add(keyHost, "must not be empty")
		}
	default:
		for _, hp := range splitHosts(c.Host) {
			if !validHost(hp.host) || hp.port < 0 {
				add(keyHost, "each host must be a host name, an IP address or a Unix socket directory (an absolute path), "+
					"optionally followed by :port (1-65535); separate several hosts with commas")
				break
			}
		}
	}
	if (c.Port < 1 || c.Port > 65535) && !(service && c.Port == 0) {
		add(keyPort, "must be between 1 and 65535")
	}
	if c.User == "" {
		if !service {
			add(keyUser, "must not be empty")
		}
	} else {
		noNUL(keyUser, c.User)
	}
	if c.Database == "" {
		if !service {
			add(keyDatabase, "must not be empty")
		}
	} else {
		noNUL(keyDatabase, c.Database)
	}
	noNUL(keyPassword, c.Password)
	if !slices.Contains(sslModes, c.SSLMode) && !(service && c.SSLMode == "") {
		add(keySSLMode, "must be one of %s", strings.Join(sslModes, ", "))
	}
	noNUL(keySSLRootCert, c.SSLRootCert)
	noNUL(keySSLCert, c.SSLCert)
	noNUL(keySSLKey, c.SSLKey)

	poolSizeOK := c.PoolSize >= 1 && c.PoolSize <= MaxPoolSize
	if !poolSizeOK {
		add(keyPoolSize, "must be between 1 and %d", MaxPoolSize)
	}
	if c.MinConns < 0 || (poolSizeOK && c.MinConns > c.PoolSize) {
		if poolSizeOK {
			add(keyMinConns, "must be between 0 and pool_size (%d)", c.PoolSize)
		} else {
			add(keyMinConns, "must not be negative")
		}
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{
		{keyConnectTimeout, c.ConnectTimeout},
		{keyConnectRetryTimeout, c.ConnectRetryTimeout},
		{keyAcquireTimeout, c.AcquireTimeout},
		{keyHealthCheckPeriod, c.HealthCheckPeriod},
		{keyMaxConnLifetime, c.MaxConnLifetime},
		{keyMaxConnIdleTime, c.MaxConnIdleTime},
		{keyIdleValidationThreshold, c.IdleValidationThreshold},
	} {
		if d.v < 0 {
			add(d.path, "must not be negative")
		}
	}
	noNUL(keyApplicationName, c.ApplicationName)
	for _, k := range slices.Sorted(maps.Keys(c.RuntimeParams)) {
		path := keyRuntimeParams + "." + k
		if k == "" {
			add(keyRuntimeParams, "must not have an empty key")
			continue
		}
		if field, ok := reservedParams[strings.ToLower(k)]; ok {
			if field != "" {
				add(path, "set it through the %s field instead", field)
			} else {
				add(path, "is not supported")
			}
			continue
		}
		if isConnParam(k) {
			add(path, "is a connection setting, not a server setting; set it through its own field or ConnParams")
			continue
		}
		if noNUL(path, k) {
			noNUL(path, c.RuntimeParams[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.ConnParams)) {
		path := keyConnParams + "." + k
		if msg := checkConnParam(k, c.ConnParams[k]); msg != "" {
			add(path, "%s", msg)
		}
	}
	if len(errs) == 0 {
		if _, err := c.buildPgxConfig(); err != nil {
			errs = append(errs, pgxConfigProblem(err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	for _, fe := range errs {
		fe.Message = redact.String(fe.Message, c.secrets()...)
	}
	return errs
}

// secrets returns what must never be shown: the password and the TLS key's password.
func (c Config) secrets() []string {
	return []string{c.Password, c.ConnParams[connParamSSLPassword]}
}

// quoteShort quotes a value for an error message, cutting long ones.
func quoteShort(s string) string {
	const max = 32
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// shownPassword is what a Config shows in place of its password.
func (c Config) shownPassword() string {
	if c.Password == "" {
		return ""
	}
	return redact.Placeholder
}

// String returns the configuration as a postgres:// URL with the password (and
// sslpassword) replaced by "xxxxx", listing the settings that differ from
// [DefaultConfig]. Apart from the hidden values, [ParseConfig] reads it back to the
// same Config.
func (c Config) String() string {
	u := url.URL{Scheme: "postgres", Path: "/" + c.Database}
	q := url.Values{}
	hosts := splitHosts(c.Host)
	socket := c.Host == "" || slices.ContainsFunc(hosts, func(hp hostPort) bool { return strings.HasPrefix(hp.host, "/") })
	switch {
	case socket:
		q.Set("host", c.Host)
		if c.Port != 5432 {
			q.Set("port", strconv.Itoa(c.Port))
		}
	case len(hosts) == 1:
		port := hosts[0].port
		if port <= 0 {
			port = c.Port
		}
		u.Host = net.JoinHostPort(hosts[0].host, strconv.Itoa(port))
	default:
		parts := make([]string, len(hosts))
		for i, hp := range hosts {
			switch {
			case hp.port > 0:
				parts[i] = hp.String()
			case c.Port != 5432:
				parts[i] = net.JoinHostPort(hp.host, strconv.Itoa(c.Port))
			case strings.Contains(hp.host, ":"):
				parts[i] = "[" + hp.host + "]"
			default:
				parts[i] = hp.host
			}
		}
		u.Host = strings.Join(parts, ",")
	}
	switch {
	case c.Password != "":
		u.User = url.UserPassword(c.User, redact.Placeholder)
	case c.User != "":
		u.User = url.User(c.User)
	}
	d := DefaultConfig()
	setS := func(k, v, def string) {
		if v != def {
			q.Set(k, v)
		}
	}
	setI := func(k string, v, def int) {
		if v != def {
			q.Set(k, strconv.Itoa(v))
		}
	}
	setD := func(k string, v, def time.Duration) {
		if v != def {
			q.Set(k, v.String())
		}
	}
	setS(keySSLMode, c.SSLMode, d.SSLMode)
	setS(keySSLRootCert, c.SSLRootCert, "")
	setS(keySSLCert, c.SSLCert, "")
	setS(keySSLKey, c.SSLKey, "")
	setI(keyPoolSize, c.PoolSize, d.PoolSize)
	setI(keyMinConns, c.MinConns, d.MinConns)
	setD(keyConnectTimeout, c.ConnectTimeout, d.ConnectTimeout)
	setD(keyConnectRetryTimeout, c.ConnectRetryTimeout, d.ConnectRetryTimeout)
	setD(keyAcquireTimeout, c.AcquireTimeout, d.AcquireTimeout)
	setD(keyHealthCheckPeriod, c.HealthCheckPeriod, d.HealthCheckPeriod)
	setD(keyMaxConnLifetime, c.MaxConnLifetime, d.MaxConnLifetime)
	setD(keyMaxConnIdleTime, c.MaxConnIdleTime, d.MaxConnIdleTime)
	setD(keyIdleValidationThreshold, c.IdleValidationThreshold, d.IdleValidationThreshold)
	setS(keyApplicationName, c.ApplicationName, d.ApplicationName)
	for k, v := range c.RuntimeParams {
		if _, taken := q[k]; !taken {
			q.Set(k, v)
		}
	}
	for k, v := range c.shownConnParams() {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// plainConfig has Config's fields and none of its methods, for fmt to print.
type plainConfig Config

func (c Config) redacted() plainConfig {
	r := plainConfig(c)
	r.Password = c.shownPassword()
	r.ConnParams = c.shownConnParams()
	return r
}

// shownConnParams returns ConnParams with sslpassword replaced by "xxxxx".
func (c Config) shownConnParams() map[string]string {
	if _, ok := c.ConnParams[connParamSSLPassword]; !ok {
		return c.ConnParams
	}
	shown := maps.Clone(c.ConnParams)
	shown[connParamSSLPassword] = redact.Placeholder
	return shown
}

// GoString returns a Go literal of the Config with the password replaced by "xxxxx".
func (c Config) GoString() string {
	return strings.Replace(fmt.Sprintf("%#v", c.redacted()), "provider.plainConfig{", "provider.Config{", 1)
}

// Format implements fmt.Formatter so that no verb prints the password: %v and %s print
// [Config.String], %+v the fields, %#v [Config.GoString], %q the quoted String.
func (c Config) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, c.GoString())
	case verb == 'v' && f.Flag('+'):
		_, _ = fmt.Fprintf(f, "%+v", c.redacted())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(c.String()))
	default:
		_, _ = io.WriteString(f, c.String())
	}
}

// LogValue implements slog.LogValuer: the Config as a group of attributes, the password
// replaced by "xxxxx".
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String(keyHost, c.Host),
		slog.Int(keyPort, c.Port),
		slog.String(keyUser, c.User),
		slog.String(keyDatabase, c.Database),
	}
	if c.Password != "" {
		attrs = append(attrs, slog.String(keyPassword, redact.Placeholder))
	}
	attrs = append(attrs,
		slog.String(keySSLMode, c.SSLMode),
		slog.Int(keyPoolSize, c.PoolSize),
		slog.Int(keyMinConns, c.MinConns),
		slog.Duration(keyConnectTimeout, c.ConnectTimeout),
		slog.Duration(keyConnectRetryTimeout, c.ConnectRetryTimeout),
		slog.Duration(keyAcquireTimeout, c.AcquireTimeout),
		slog.Duration(keyHealthCheckPeriod, c.HealthCheckPeriod),
		slog.String(keyApplicationName, c.ApplicationName),
	)
	if len(c.ConnParams) > 0 {
		attrs = append(attrs, slog.Any(keyConnParams, c.shownConnParams()))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the Config with the snake_case keys of [ConfigFromMap], durations
// as strings such as "5s", and the password replaced by "xxxxx".
func (c Config) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		keyHost: c.Host, keyPort: c.Port, keyUser: c.User, keyDatabase: c.Database,
		keySSLMode: c.SSLMode, keyPoolSize: c.PoolSize, keyMinConns: c.MinConns,
		keyConnectTimeout:          c.ConnectTimeout.String(),
		keyConnectRetryTimeout:     c.ConnectRetryTimeout.String(),
		keyAcquireTimeout:          c.AcquireTimeout.String(),
		keyHealthCheckPeriod:       c.HealthCheckPeriod.String(),
		keyMaxConnLifetime:         c.MaxConnLifetime.String(),
		keyMaxConnIdleTime:         c.MaxConnIdleTime.String(),
		keyIdleValidationThreshold: c.IdleValidationThreshold.String(),
		keyApplicationName:         c.ApplicationName,
	}
	if c.Password != "" {
		m[keyPassword] = redact.Placeholder
	}
	for k, v := range map[string]string{keySSLRootCert: c.SSLRootCert, keySSLCert: c.SSLCert, keySSLKey: c.SSLKey} {
		if v != "" {
			m[k] = v
		}
	}
	if len(c.RuntimeParams) > 0 {
		m[keyRuntimeParams] = c.RuntimeParams
	}
	if len(c.ConnParams) > 0 {
		m[keyConnParams] = c.shownConnParams()
	}
	return json.Marshal(m)
}
