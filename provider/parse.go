package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uno-framework/uno/internal/redact"
)

// fieldKind says how a Config field is converted from its textual or map form.
type fieldKind int

const (
	kindString fieldKind = iota
	kindInt
	kindDuration
	kindParams
)

var fieldKinds = map[string]fieldKind{
	keyHost: kindString, keyPort: kindInt, keyUser: kindString, keyDatabase: kindString,
	keyPassword: kindString, keySSLMode: kindString, keySSLRootCert: kindString,
	keySSLCert: kindString, keySSLKey: kindString, keyPoolSize: kindInt, keyMinConns: kindInt,
	keyConnectTimeout: kindDuration, keyAcquireTimeout: kindDuration,
	keyHealthCheckPeriod: kindDuration, keyMaxConnLifetime: kindDuration,
	keyMaxConnIdleTime: kindDuration, keyIdleValidationThreshold: kindDuration,
	keyApplicationName: kindString, keyRuntimeParams: kindParams,
}

// textAliases are the other names a connection string may use for a field: libpq's and
// pgxpool's.
var textAliases = map[string]string{
	"dbname":                   keyDatabase,
	"pool_max_conns":           keyPoolSize,
	"pool_min_conns":           keyMinConns,
	"pool_max_conn_lifetime":   keyMaxConnLifetime,
	"pool_max_conn_idle_time":  keyMaxConnIdleTime,
	"pool_health_check_period": keyHealthCheckPeriod,
}

// legacyKeys are the keys of the legacy configuration maps.
var legacyKeys = map[string]string{
	"db_host":    keyHost,
	"db_port":    keyPort,
	"db_role":    keyUser,
	"db_name":    keyDatabase,
	"db_user_pw": keyPassword,
}

// unsupportedParams are libpq and pgx connection-string keywords that Config cannot
// express; passed on as server settings they would fail at connect time.
var unsupportedParams = map[string]bool{
	"hostaddr": true, "passfile": true, "service": true, "servicefile": true,
	"target_session_attrs": true, "load_balance_hosts": true, "sslpassword": true,
	"sslnegotiation": true, "sslsni": true, "sslcrl": true, "sslcrldir": true,
	"sslcertmode": true, "gssencmode": true, "krbsrvname": true, "gsslib": true,
	"channel_binding": true, "requiressl": true, "require_auth": true, "keepalives": true,
	"keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "replication": true, "min_read_buffer_size": true,
	"statement_cache_capacity": true, "description_cache_capacity": true,
	"default_query_exec_mode": true, "pool_min_idle_conns": true,
	"pool_max_conn_lifetime_jitter": true, "pool_ping_timeout": true, "max_protocol_version": true,
	"min_protocol_version": true,
}

// isConnParam reports whether a connection string would not pass k on as a server
// setting.
func isConnParam(k string) bool {
	_, field := fieldKinds[k]
	_, alias := textAliases[k]
	return field || alias || unsupportedParams[k]
}

// builder accumulates a Config and every problem met while building it.
type builder struct {
	cfg     Config
	errs    ValidationErrors
	paths   map[string]string // field key -> the name the input used for it
	failed  map[string]bool   // field keys that already have an error
	secrets []string
	userSet bool
	dbSet   bool
}

func newBuilder() *builder {
	return &builder{cfg: DefaultConfig(), paths: map[string]string{}, failed: map[string]bool{}}
}

func (b *builder) fail(key, path, format string, args ...any) {
	if key != "" {
		b.failed[key] = true
	}
	b.errs = append(b.errs, &FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// setString stores a converted value in the field named by key.
func (b *builder) setString(key, v string) {
	switch key {
	case keyHost:
		b.cfg.Host = v
	case keyUser:
		b.cfg.User = v
		b.userSet = true
	case keyDatabase:
		b.cfg.Database = v
		b.dbSet = true
	case keyPassword:
		b.cfg.Password = v
		b.secrets = append(b.secrets, v)
	case keySSLMode:
		b.cfg.SSLMode = v
	case keySSLRootCert:
		b.cfg.SSLRootCert = v
	case keySSLCert:
		b.cfg.SSLCert = v
	case keySSLKey:
		b.cfg.SSLKey = v
	case keyApplicationName:
		b.cfg.ApplicationName = v
	}
}

func (b *builder) setInt(key string, v int) {
	switch key {
	case keyPort:
		b.cfg.Port = v
	case keyPoolSize:
		b.cfg.PoolSize = v
	case keyMinConns:
		b.cfg.MinConns = v
	}
}

func (b *builder) setDuration(key string, v time.Duration) {
	switch key {
	case keyConnectTimeout:
		b.cfg.ConnectTimeout = v
	case keyAcquireTimeout:
		b.cfg.AcquireTimeout = v
	case keyHealthCheckPeriod:
		b.cfg.HealthCheckPeriod = v
	case keyMaxConnLifetime:
		b.cfg.MaxConnLifetime = v
	case keyMaxConnIdleTime:
		b.cfg.MaxConnIdleTime = v
	case keyIdleValidationThreshold:
		b.cfg.IdleValidationThreshold = v
	}
}

func (b *builder) setParam(k, v string) {
	if b.cfg.RuntimeParams == nil {
		b.cfg.RuntimeParams = map[string]string{}
	}
	b.cfg.RuntimeParams[k] = v
}

// assignText converts the textual value of field key, reported as path.
func (b *builder) assignText(key, path, v string) {
	b.paths[key] = path
	switch fieldKinds[key] {
	case kindString:
		b.setString(key, v)
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			b.fail(key, path, "must be an integer (got %s)", quoteShort(v))
			return
		}
		b.setInt(key, n)
	case kindDuration:
		d, ok := parseDuration(v)
		if !ok {
			b.fail(key, path, "must be a duration such as \"5s\" or a number of seconds (got %s)", quoteShort(v))
			return
		}
		b.setDuration(key, d)
	case kindParams:
		b.fail(key, path, "cannot be given as text")
	}
}

// parseDuration reads a Go duration ("1m30s") or a number of seconds ("90", "1.5").
func parseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsDuration(f)
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

func secondsDuration(f float64) (time.Duration, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// assignConnParam handles one keyword of a connection string (URL query or
// keyword/value).
func (b *builder) assignConnParam(k, v string) {
	key := k
	if alias, ok := textAliases[k]; ok {
		key = alias
	}
	if kind, ok := fieldKinds[key]; ok && kind != kindParams {
		b.assignText(key, k, v)
		return
	}
	if unsupportedParams[k] || k == keyRuntimeParams {
		b.fail("", k, "is not supported by provider.Config; remove it, or set it with provider.WithPgxConfig")
		return
	}
	// Anything else is a server setting (search_path, statement_timeout, ...).
	b.setParam(k, v)
}

// finish applies libpq's default database (the user name), validates, and returns the
// Config or every problem found.
func (b *builder) finish() (Config, error) {
	if b.userSet && !b.dbSet {
		b.cfg.Database = b.cfg.User
		b.paths[keyDatabase] = b.paths[keyUser]
	}
	errs := b.errs
	if err := b.cfg.Validate(); err != nil {
		var verrs ValidationErrors
		errors.As(err, &verrs)
		for _, fe := range verrs {
			key, rest, _ := strings.Cut(fe.Path, ".")
			if b.failed[key] {
				continue
			}
			if p, ok := b.paths[key]; ok {
				fe.Path = p
				if rest != "" {
					fe.Path += "." + rest
				}
			}
			errs = append(errs, fe)
		}
	}
	if len(errs) == 0 {
		return b.cfg, nil
	}
	for _, fe := range errs {
		fe.Path = redact.String(fe.Path, b.secrets...)
		fe.Message = redact.String(fe.Message, b.secrets...)
	}
	return Config{}, errs
}

// ParseConfig reads a connection string, either a URL
//
//	postgres://user:password@host:5432/database?sslmode=require&pool_size=20
//
// or libpq's keyword/value form
//
//	host=db port=5432 user=app password='it''s secret' dbname=shop pool_size=20
//
// on top of [DefaultConfig], and validates the result. Besides the fields' own names
// (see [ConfigFromMap]) it accepts libpq's dbname and pgxpool's pool_max_conns,
// pool_min_conns, pool_max_conn_lifetime, pool_max_conn_idle_time and
// pool_health_check_period; durations are Go durations ("30s") or numbers of seconds;
// other keywords are server settings (RuntimeParams). Keywords that Config cannot
// honour (passfile, service, target_session_attrs, ...) are errors. As in libpq, the
// database defaults to the user name. Unlike libpq, the environment is not consulted:
// use [ConfigFromEnv] for that. The empty string gives DefaultConfig.
//
// Errors are [ValidationErrors] that never contain the password.
func ParseConfig(connString string) (Config, error) {
	b := newBuilder()
	s := strings.TrimSpace(connString)
	switch {
	case s == "":
	case hasScheme(s):
		b.parseURL(s)
	case strings.Contains(s, "="):
		b.parseKeyValue(s)
	default:
		b.fail("", "url", "must be a postgres:// URL or a keyword/value string such as \"host=localhost dbname=app\"")
	}
	return b.finish()
}

// hasScheme reports whether s starts with "scheme://".
func hasScheme(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, r := range s[:i] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func (b *builder) parseURL(s string) {
	scheme, rest, _ := strings.Cut(s, "://")
	if !strings.EqualFold(scheme, "postgres") && !strings.EqualFold(scheme, "postgresql") {
		b.fail("", "url", "unsupported scheme %s; use postgres:// or postgresql://", quoteShort(scheme))
		return
	}
	authority := rest
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	hosts := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		hosts = authority[i+1:]
		// Remember the password even if the URL does not parse, to keep it out of errors.
		if _, pw, ok := strings.Cut(authority[:i], ":"); ok && pw != "" {
			b.secrets = append(b.secrets, pw)
			if dec, err := url.PathUnescape(pw); err == nil {
				b.secrets = append(b.secrets, dec)
			}
		}
	}
	if strings.Contains(hosts, ",") {
		b.fail(keyHost, keyHost, "multiple hosts are not supported; give one host")
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		if p, ok := strings.CutPrefix(msg, "invalid port "); ok {
			b.fail(keyPort, keyPort, "must be a number between 1 and 65535 (got %s)", strings.TrimSuffix(p, " after host"))
			return
		}
		b.fail("", "url", "malformed URL: %s", msg)
		return
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			b.assignText(keyUser, keyUser, name)
		}
		if pw, ok := u.User.Password(); ok {
			b.assignText(keyPassword, keyPassword, pw)
		}
	}
	if h := u.Hostname(); h != "" {
		b.assignText(keyHost, keyHost, h)
	}
	if p := u.Port(); p != "" {
		b.assignText(keyPort, keyPort, p)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		b.assignText(keyDatabase, keyDatabase, db)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		b.fail("", "url", "malformed query string: %v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		b.assignConnParam(k, vs[len(vs)-1])
	}
}

// parseKeyValue reads libpq's keyword/value form: key=value pairs separated by spaces,
// values optionally in single quotes, backslash escaping the next character.
func (b *builder) parseKeyValue(s string) {
	i := 0
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' || key == "" {
			b.fail("", "url", "malformed keyword/value string: expected keyword=value at offset %d", start)
			return
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				if key == keyPassword {
					b.secrets = append(b.secrets, val.String())
				}
				b.fail("", "url", "malformed keyword/value string: unterminated quoted value at offset %d", start)
				return
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		if key == keyPassword {
			b.secrets = append(b.secrets, val.String())
		}
		b.assignConnParam(key, val.String())
	}
}

// Environment variables read by [ConfigFromEnv], in order.
var envVars = []struct{ name, key string }{
	{"PGHOST", keyHost},
	{"PGPORT", keyPort},
	{"PGUSER", keyUser},
	{"PGDATABASE", keyDatabase},
	{"PGPASSWORD", keyPassword},
	{"PGSSLMODE", keySSLMode},
	{"PGSSLROOTCERT", keySSLRootCert},
	{"PGSSLCERT", keySSLCert},
	{"PGSSLKEY", keySSLKey},
	{"PGAPPNAME", keyApplicationName},
	{"PGCONNECT_TIMEOUT", keyConnectTimeout},
}

// ConfigFromEnv builds a Config from the environment: DATABASE_URL if it is set (read by
// [ParseConfig]); otherwise the libpq variables PGHOST, PGPORT, PGUSER, PGDATABASE,
// PGPASSWORD, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGAPPNAME and
// PGCONNECT_TIMEOUT (seconds) on top of [DefaultConfig]. Empty variables count as
// unset; as in libpq, the database defaults to the user name. Problems are reported
// with the variable's name as their path.
func ConfigFromEnv() (Config, error) {
	if v := os.Getenv("DATABASE_URL"); strings.TrimSpace(v) != "" {
		cfg, err := ParseConfig(v)
		if err != nil {
			return Config{}, fmt.Errorf("DATABASE_URL: %w", err)
		}
		return cfg, nil
	}
	b := newBuilder()
	for _, e := range envVars {
		if v := os.Getenv(e.name); v != "" {
			b.assignText(e.key, e.name, v)
		}
	}
	return b.finish()
}

// ConfigFromMap builds a Config from a map — decoded JSON, YAML, TOML, or a legacy
// settings dictionary — on top of [DefaultConfig], and validates it.
//
// Keys (case-insensitive): host, port, user, database, password, sslmode, sslrootcert,
// sslcert, sslkey, pool_size, min_conns, connect_timeout, acquire_timeout,
// health_check_period, max_conn_lifetime, max_conn_idle_time,
// idle_validation_threshold, application_name, runtime_params; and the legacy keys
// db_host (host), db_port (port), db_role (user), db_name (database) and db_user_pw
// (password). Giving a field under two names is an error, and so is an unknown key.
//
// Values: strings for the text fields; for port, pool_size and min_conns any Go
// integer, a whole float64 (as encoding/json produces), a json.Number or a numeric
// string; for durations a time.Duration, a string such as "30s", or a number of
// seconds; for runtime_params a map[string]string or a map[string]any of strings. A nil
// value leaves the default. A wrong type is an error naming the key.
func ConfigFromMap(m map[string]any) (Config, error) {
	b := newBuilder()
	seen := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lk := strings.ToLower(strings.TrimSpace(k))
		key := lk
		if canon, ok := legacyKeys[lk]; ok {
			key = canon
		}
		if _, ok := fieldKinds[key]; !ok {
			path := k
			if lk == "" {
				path = strconv.Quote(k)
			}
			b.fail("", path, "unknown key; see provider.ConfigFromMap for the accepted keys")
			continue
		}
		if prev, dup := seen[key]; dup {
			b.fail(key, k, "sets the same field as %s; give only one of them", prev)
			continue
		}
		seen[key] = k
		if m[k] == nil {
			continue
		}
		b.assignAny(key, k, m[k])
	}
	return b.finish()
}

// assignAny converts a map value for field key, reported as path.
func (b *builder) assignAny(key, path string, v any) {
	b.paths[key] = path
	switch fieldKinds[key] {
	case kindString:
		s, ok := v.(string)
		if !ok {
			b.fail(key, path, "must be a string (got %s)", typeName(v))
			return
		}
		b.setString(key, s)
	case kindInt:
		n, msg := toInt(v)
		if msg != "" {
			b.fail(key, path, "%s", msg)
			return
		}
		b.setInt(key, n)
	case kindDuration:
		d, msg := toDuration(v)
		if msg != "" {
			b.fail(key, path, "%s", msg)
			return
		}
		b.setDuration(key, d)
	case kindParams:
		params, msg := toParams(v)
		if msg != "" {
			b.fail(key, path, "%s", msg)
			return
		}
		b.cfg.RuntimeParams = params
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// toInt converts an integer-like value; the message is empty on success.
func toInt(v any) (int, string) {
	const outOfRange = "is out of range"
	switch n := v.(type) {
	case int:
		return n, ""
	case int8:
		return int(n), ""
	case int16:
		return int(n), ""
	case int32:
		return int(n), ""
	case int64:
		if n < math.MinInt || n > math.MaxInt {
			return 0, outOfRange
		}
		return int(n), ""
	case uint:
		if n > math.MaxInt {
			return 0, outOfRange
		}
		return int(n), ""
	case uint8:
		return int(n), ""
	case uint16:
		return int(n), ""
	case uint32:
		return int(n), ""
	case uint64:
		if n > math.MaxInt {
			return 0, outOfRange
		}
		return int(n), ""
	case float32:
		return floatToInt(float64(n))
	case float64:
		return floatToInt(n)
	case json.Number:
		return stringToInt(string(n))
	case string:
		return stringToInt(n)
	default:
		return 0, fmt.Sprintf("must be an integer (got %s)", typeName(v))
	}
}

func floatToInt(f float64) (int, string) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, fmt.Sprintf("must be a whole number (got %v)", f)
	}
	if f < -(1<<53) || f > 1<<53 {
		return 0, "is out of range"
	}
	return int(f), ""
}

func stringToInt(s string) (int, string) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Sprintf("must be an integer (got %s)", quoteShort(s))
	}
	return n, ""
}

// toDuration converts a duration-like value; numbers are seconds.
func toDuration(v any) (time.Duration, string) {
	const want = "must be a duration such as \"5s\" or a number of seconds"
	switch d := v.(type) {
	case time.Duration:
		return d, ""
	case string:
		if dd, ok := parseDuration(d); ok {
			return dd, ""
		}
		return 0, fmt.Sprintf("%s (got %s)", want, quoteShort(d))
	case json.Number:
		if dd, ok := parseDuration(string(d)); ok {
			return dd, ""
		}
		return 0, fmt.Sprintf("%s (got %s)", want, quoteShort(string(d)))
	case float64:
		if dd, ok := secondsDuration(d); ok {
			return dd, ""
		}
		return 0, "is out of range"
	case float32:
		if dd, ok := secondsDuration(float64(d)); ok {
			return dd, ""
		}
		return 0, "is out of range"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		n, msg := toInt(v)
		if msg != "" {
			return 0, msg
		}
		if dd, ok := secondsDuration(float64(n)); ok {
			return dd, ""
		}
		return 0, "is out of range"
	default:
		return 0, fmt.Sprintf("%s (got %s)", want, typeName(v))
	}
}

func toParams(v any) (map[string]string, string) {
	switch p := v.(type) {
	case map[string]string:
		return maps.Clone(p), ""
	case map[string]any:
		out := make(map[string]string, len(p))
		for _, k := range slices.Sorted(maps.Keys(p)) {
			s, ok := p[k].(string)
			if !ok {
				return nil, fmt.Sprintf("value of %s must be a string (got %s)", quoteShort(k), typeName(p[k]))
			}
			out[k] = s
		}
		return out, ""
	default:
		return nil, fmt.Sprintf("must be a map of strings (got %s)", typeName(v))
	}
}
