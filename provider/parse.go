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

	"github.com/jackc/pgx/v5/pgconn"

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
	keyConnectTimeout: kindDuration, keyConnectRetryTimeout: kindDuration, keyAcquireTimeout: kindDuration,
	keyHealthCheckPeriod: kindDuration, keyMaxConnLifetime: kindDuration,
	keyMaxConnIdleTime: kindDuration, keyIdleValidationThreshold: kindDuration,
	keyApplicationName: kindString, keyRuntimeParams: kindParams, keyConnParams: kindParams,
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

// builder accumulates a Config and every problem met while building it.
type builder struct {
	cfg      Config
	errs     ValidationErrors
	paths    map[string]string // field key (or conn_params.k) -> the name the input used for it
	failed   map[string]bool   // field keys that already have an error
	secrets  []string
	portList []string // a port keyword listing several ports, one per host
	userSet  bool
	dbSet    bool
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
	case keyConnectRetryTimeout:
		b.cfg.ConnectRetryTimeout = v
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

func (b *builder) setConnParam(k, v, path string) {
	if b.cfg.ConnParams == nil {
		b.cfg.ConnParams = map[string]string{}
	}
	b.cfg.ConnParams[k] = v
	b.paths[keyConnParams+"."+k] = path
	if k == connParamSSLPassword {
		b.secrets = append(b.secrets, v)
	}
}

// assignText converts the textual value of field key, reported as path. Values are
// never quoted back in errors: in a malformed connection string, any of them may hold
// part of a password.
func (b *builder) assignText(key, path, v string) {
	b.paths[key] = path
	switch fieldKinds[key] {
	case kindString:
		b.setString(key, v)
	case kindInt:
		if key == keyPort && strings.Contains(v, ",") {
			b.portList = strings.Split(v, ",")
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			b.fail(key, path, "must be an integer")
			return
		}
		b.setInt(key, n)
	case kindDuration:
		d, ok := parseDuration(v)
		if !ok {
			b.fail(key, path, "must be a duration such as \"5s\" or a number of seconds")
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
// keyword/value) or one libpq environment variable, reported as path: a Config field,
// a connection setting (ConnParams) or, for anything else, a server setting
// (RuntimeParams).
func (b *builder) assignConnParam(k, v, path string) {
	key := k
	if alias, ok := textAliases[k]; ok {
		key = alias
	}
	switch kind, field := fieldKinds[key]; {
	case field && kind != kindParams:
		b.assignText(key, path, v)
	case field || unsupportedParams[k]:
		b.fail("", path, "is not supported: pgx does not implement it")
	case slices.Contains(connParamKeys, k):
		b.setConnParam(k, v, path)
	default:
		b.setParam(k, v)
	}
}

// resolvePorts applies a port list ("5432,5433") to the hosts, one port per host, or
// one port for all.
func (b *builder) resolvePorts() {
	if b.portList == nil {
		return
	}
	path := b.paths[keyPort]
	hosts := splitHosts(b.cfg.Host)
	if len(b.portList) != 1 && len(b.portList) != len(hosts) {
		b.fail(keyPort, path, "lists %d ports for %d hosts; give one port for all hosts, or one per host", len(b.portList), len(hosts))
		return
	}
	for i := range hosts {
		p := strings.TrimSpace(b.portList[min(i, len(b.portList)-1)])
		if p == "" {
			continue
		}
		if hosts[i].port = portOf(p); hosts[i].port < 0 {
			b.fail(keyPort, path, "must be numbers between 1 and 65535")
			return
		}
	}
	b.cfg.Host, b.cfg.Port = normalizeHosts(hosts, b.cfg.Port)
}

// normalizeHosts returns the Host and Port fields for a list of hosts: one host and its
// port; several hosts sharing one port as a plain list and that port; otherwise the
// hosts with their own ports and defaultPort for the others.
func normalizeHosts(hosts []hostPort, defaultPort int) (string, int) {
	if len(hosts) == 1 {
		if hosts[0].port > 0 {
			return hosts[0].host, hosts[0].port
		}
		return hosts[0].host, defaultPort
	}
	shared := hosts[0].port
	for _, hp := range hosts[1:] {
		if hp.port != shared {
			return joinHosts(hosts), defaultPort
		}
	}
	bare := make([]hostPort, len(hosts))
	for i, hp := range hosts {
		bare[i] = hostPort{host: hp.host}
	}
	if shared <= 0 {
		shared = defaultPort
	}
	return joinHosts(bare), shared
}

// finish resolves port lists and services, applies libpq's default database (the user
// name), validates, and returns the Config or every problem found.
func (b *builder) finish() (Config, error) {
	b.resolvePorts()
	if hosts := splitHosts(b.cfg.Host); b.cfg.Host != "" && !slices.ContainsFunc(hosts, func(hp hostPort) bool { return hp.port < 0 }) {
		b.cfg.Host, b.cfg.Port = normalizeHosts(hosts, b.cfg.Port)
	}
	if b.cfg.ConnParams["service"] != "" {
		// What the connection string leaves out, the service file supplies.
		if _, ok := b.paths[keyHost]; !ok {
			b.cfg.Host = ""
		}
		if _, ok := b.paths[keyPort]; !ok {
			b.cfg.Port = 0
		}
		if !b.userSet {
			b.cfg.User = ""
		}
		if !b.dbSet {
			b.cfg.Database = ""
		}
		if _, ok := b.paths[keySSLMode]; !ok {
			b.cfg.SSLMode = ""
		}
	} else if b.userSet && !b.dbSet {
		b.cfg.Database = b.cfg.User
		b.paths[keyDatabase] = b.paths[keyUser]
	}
	errs := b.errs
	if err := b.cfg.Validate(); err != nil {
		var verrs ValidationErrors
		errors.As(err, &verrs)
		for _, fe := range verrs {
			key, rest, _ := strings.Cut(fe.Path, ".")
			if b.failed[key] || (len(b.errs) > 0 && strings.HasPrefix(fe.Message, pgxRejects)) {
				continue
			}
			if p, ok := b.paths[fe.Path]; ok && rest != "" {
				fe.Path = p
			} else if p, ok := b.paths[key]; ok {
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

// ParseConfig reads a connection string — anything pgx accepts — either a URL
//
//	postgres://user:password@host1:5432,host2:5433/database?sslmode=require&pool_size=20
//
// or libpq's keyword/value form
//
//	host=db1,db2 port=5432 user=app password='it''s secret' dbname=shop target_session_attrs=read-write
//
// on top of [DefaultConfig], and validates the result. pgx is the judge: the string
// must be one pgconn.ParseConfig accepts, and the Config built from it is checked by
// pgconn.ParseConfig again (see [Config.Validate]). Besides the fields' own names (see
// [ConfigFromMap]) it accepts libpq's dbname and pgxpool's pool_max_conns,
// pool_min_conns, pool_max_conn_lifetime, pool_max_conn_idle_time and
// pool_health_check_period; durations are Go durations ("30s") or numbers of seconds.
// Connection settings without a field of their own (target_session_attrs, passfile,
// service, keepalives, ...) go to ConnParams; every other keyword is a server setting
// (RuntimeParams). As in libpq, the database defaults to the user name, and what a
// service is given for is left to the service file.
//
// ParseConfig does not read the environment: [ConfigFromEnv] does. The empty string
// gives DefaultConfig.
//
// Errors are [ValidationErrors] that never contain the password, nor any value taken
// from the string: in a malformed string, any value may hold part of the password.
func ParseConfig(connString string) (Config, error) {
	b := newBuilder()
	s := strings.TrimSpace(connString)
	b.secrets = append(b.secrets, credentialCandidates(s)...)
	switch {
	case s == "":
	case hasScheme(s) && !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://"):
		b.fail("", "url", "unsupported scheme; use postgres:// or postgresql://")
	default:
		// pgx judges the syntax; what the settings mean, Validate has pgx judge on the
		// Config built from them, where no environment variable interferes.
		if _, err := pgconn.ParseConfig(s); err != nil && syntaxError(err) {
			fe := pgxConfigProblem(err)
			fe.Path = "url"
			fe.Message += " (a connection string is a postgres:// URL, or keyword=value pairs separated by spaces " +
				"with values holding spaces or quotes in single quotes; percent-encode special characters of a URL's password)"
			b.errs = append(b.errs, fe)
			break
		}
		if hasScheme(s) {
			b.parseURL(s)
		} else {
			b.parseKeyValue(s)
		}
	}
	return b.finish()
}

// credentialCandidates returns what, in a connection string, may be a password: in a
// URL, everything between "://" and the last '@' after the first ':' (whole, decoded,
// and cut at each character that would end a URL part); in keyword/value form, the
// value after "password=".
func credentialCandidates(s string) []string {
	var out []string
	add := func(v string) {
		out = append(out, v)
		if dec, err := url.PathUnescape(v); err == nil && dec != v {
			out = append(out, dec)
		}
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(" '\"@:/?#%\\,&=", r) }) {
			out = append(out, part)
		}
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
	}
	for rest := s; ; {
		i := strings.Index(rest, "password")
		if i < 0 {
			break
		}
		rest = strings.TrimLeft(rest[i+len("password"):], " \t\n\r\f\v")
		if v, ok := strings.CutPrefix(rest, "="); ok {
			v = strings.TrimLeft(v, " \t\n\r\f\v")
			end := len(v)
			if strings.HasPrefix(v, "'") {
				if j := strings.Index(v[1:], "'"); j >= 0 {
					end = j + 2
				}
			} else if j := strings.IndexAny(v, " \t\n\r\f\v&"); j >= 0 {
				end = j
			}
			add(strings.Trim(v[:end], "'"))
		}
	}
	return out
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

// parseURL splits a URL pgconn.ParseConfig accepted into its settings, as libpq reads
// it: user and password before an '@' that comes before any '/', then a list of
// host[:port] up to '/' or '?', the database, and the query.
func (b *builder) parseURL(s string) {
	_, rest, _ := strings.Cut(s, "://")
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		user, pw, hasPW := strings.Cut(rest[:i], ":")
		rest = rest[i+1:]
		if v, err := url.PathUnescape(user); err != nil {
			b.fail(keyUser, keyUser, "is not properly percent-encoded")
		} else if v != "" {
			b.assignText(keyUser, keyUser, v)
		}
		if v, err := url.PathUnescape(pw); err != nil {
			b.fail(keyPassword, keyPassword, "is not properly percent-encoded")
		} else if hasPW && v != "" {
			b.assignText(keyPassword, keyPassword, v)
		}
	}
	netloc, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		netloc, tail = rest[:i], rest[i:]
	}
	var path, query string
	if p, ok := strings.CutPrefix(tail, "/"); ok {
		path, query, _ = strings.Cut(p, "?")
	} else {
		query = strings.TrimPrefix(tail, "?")
	}
	if netloc != "" {
		b.setURLHosts(netloc)
	}
	if path != "" {
		if db, err := url.PathUnescape(path); err != nil {
			b.fail(keyDatabase, keyDatabase, "is not properly percent-encoded")
		} else {
			b.assignText(keyDatabase, keyDatabase, db)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		b.fail("", "url", "malformed query string")
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		b.assignConnParam(k, vs[len(vs)-1], k)
	}
}

// setURLHosts reads a URL's list of host[:port].
func (b *builder) setURLHosts(netloc string) {
	b.paths[keyHost], b.paths[keyPort] = keyHost, keyPort
	var hosts []hostPort
	for _, el := range strings.Split(netloc, ",") {
		host, port := el, ""
		if strings.HasPrefix(el, "[") {
			end := strings.IndexByte(el, ']')
			if end < 0 {
				b.fail(keyHost, keyHost, "has an IPv6 address without its closing ']'")
				return
			}
			host, port = el[1:end], strings.TrimPrefix(el[end+1:], ":")
		} else if h, p, ok := strings.Cut(el, ":"); ok {
			host, port = h, p
		}
		dec, err := url.PathUnescape(host)
		if err != nil {
			b.fail(keyHost, keyHost, "is not properly percent-encoded")
			return
		}
		hp := hostPort{host: dec}
		if port != "" {
			n, err := strconv.Atoi(port)
			switch {
			case err != nil:
				b.fail(keyPort, keyPort, "must be a number between 1 and 65535")
				return
			case n < 1 || n > 65535:
				b.fail(keyPort, keyPort, "must be between 1 and 65535")
				return
			}
			hp.port = n
		}
		hosts = append(hosts, hp)
	}
	b.cfg.Host, b.cfg.Port = normalizeHosts(hosts, b.cfg.Port)
}

// parseKeyValue splits libpq's keyword/value form, which pgconn.ParseConfig accepted,
// into its settings: key=value pairs separated by spaces, values optionally in single
// quotes, backslash escaping the next character.
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
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					break
				}
				val.WriteByte(c)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						break
					}
				}
				val.WriteByte(s[i])
				i++
			}
		}
		if key == keyPassword {
			b.secrets = append(b.secrets, val.String())
		}
		b.assignConnParam(key, val.String(), key)
	}
}

// Environment variables read by [ConfigFromEnv]: pgx's, in order.
var envVars = []struct{ name, key string }{
	{"PGHOST", keyHost},
	{"PGPORT", keyPort},
	{"PGUSER", keyUser},
	{"PGDATABASE", "dbname"},
	{"PGPASSWORD", keyPassword},
	{"PGPASSFILE", "passfile"},
	{"PGAPPNAME", keyApplicationName},
	{"PGCONNECT_TIMEOUT", keyConnectTimeout},
	{"PGSSLMODE", keySSLMode},
	{"PGSSLKEY", keySSLKey},
	{"PGSSLCERT", keySSLCert},
	{"PGSSLCERTMODE", "sslcertmode"},
	{"PGSSLSNI", "sslsni"},
	{"PGSSLROOTCERT", keySSLRootCert},
	{"PGSSLPASSWORD", connParamSSLPassword},
	{"PGSSLNEGOTIATION", "sslnegotiation"},
	{"PGTARGETSESSIONATTRS", "target_session_attrs"},
	{"PGSERVICE", "service"},
	{"PGSERVICEFILE", "servicefile"},
	{"PGTZ", "timezone"},
	{"PGOPTIONS", "options"},
	{"PGMINPROTOCOLVERSION", "min_protocol_version"},
	{"PGMAXPROTOCOLVERSION", "max_protocol_version"},
	{"PGCHANNELBINDING", "channel_binding"},
	{"PGREQUIREAUTH", "require_auth"},
}

// ConfigFromEnv builds a Config from the environment, the one place uno reads it:
// DATABASE_URL if it is set (read by [ParseConfig], nothing else consulted); otherwise
// the libpq variables pgx knows — PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
// PGPASSFILE, PGAPPNAME, PGCONNECT_TIMEOUT (seconds), PGSSLMODE, PGSSLKEY, PGSSLCERT,
// PGSSLCERTMODE, PGSSLSNI, PGSSLROOTCERT, PGSSLPASSWORD, PGSSLNEGOTIATION,
// PGTARGETSESSIONATTRS, PGSERVICE, PGSERVICEFILE, PGTZ, PGOPTIONS,
// PGMINPROTOCOLVERSION, PGMAXPROTOCOLVERSION, PGCHANNELBINDING and PGREQUIREAUTH — on
// top of [DefaultConfig]. Empty variables count as unset; as in libpq, the database
// defaults to the user name. Problems are reported with the variable's name as their
// path.
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
			if e.key == keyPassword || e.key == connParamSSLPassword {
				b.secrets = append(b.secrets, v)
			}
			b.assignConnParam(e.key, v, e.name)
		}
	}
	return b.finish()
}

// ConfigFromMap builds a Config from a map — decoded JSON, YAML, TOML, or a legacy
// settings dictionary — on top of [DefaultConfig], and validates it.
//
// Keys (case-insensitive): host, port, user, database, password, sslmode, sslrootcert,
// sslcert, sslkey, pool_size, min_conns, connect_timeout, connect_retry_timeout,
// acquire_timeout, health_check_period, max_conn_lifetime, max_conn_idle_time,
// idle_validation_threshold, application_name, runtime_params, conn_params; and the
// legacy keys db_host (host), db_port (port), db_role (user), db_name (database) and
// db_user_pw (password). Giving a field under two names is an error, and so is an
// unknown key.
//
// Values: strings for the text fields; for port, pool_size and min_conns any Go
// integer, a whole float64 (as encoding/json produces), a json.Number or a numeric
// string; for durations a time.Duration, a string such as "30s", or a number of
// seconds; for runtime_params and conn_params a map[string]string or a map[string]any
// of strings. A nil value leaves the default. A wrong type is an error naming the key.
func ConfigFromMap(m map[string]any) (Config, error) {
	b := newBuilder()
	if pw, ok := m["password"].(string); ok {
		b.secrets = append(b.secrets, pw)
	}
	for k, v := range m {
		if s, ok := v.(string); ok && legacyKeys[strings.ToLower(strings.TrimSpace(k))] == keyPassword {
			b.secrets = append(b.secrets, s)
		}
	}
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
		if key == keyConnParams {
			for k, v := range params {
				b.setConnParam(k, v, path+"."+k)
			}
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
