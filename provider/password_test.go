package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pgserver"
	"github.com/uno-framework/uno/provider"
)

// Passwords in these tests start and end with markers that appear nowhere else, so
// that a test can tell when any part of one shows.
const (
	pwHead = "Zq9hEaD"
	pwTail = "Qx7tAiL"
)

// specials are the characters that break naive connection-string parsers.
const specials = ` '"@:/?#%\`

// percentEncode escapes every byte but letters and digits, as a URL's userinfo needs.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// kvQuote quotes s for a keyword/value string.
func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// assertHidden fails if any part of pw shows in any printed form of v.
func assertHidden(t *testing.T, pw string, v any, what string) {
	t.Helper()
	assertNotShown(t, v, what, pw, pwHead, pwTail)
}

// assertNotShown fails if any of parts shows in any printed form of v.
func assertNotShown(t *testing.T, v any, what string, parts ...string) {
	t.Helper()
	texts := printed(v)
	if raw, err := json.Marshal(v); err == nil {
		texts["json"] = string(raw)
	}
	logger, logs := newLogger()
	logger.Info("value", "v", v)
	texts["log"] = logs.String()
	for format, s := range texts {
		for _, part := range parts {
			if strings.Contains(s, part) {
				t.Errorf("%s: %s shows part of the password: %s", what, format, s)
			}
		}
	}
}

func TestNoPartOfAPasswordIsEverShown(t *testing.T) {
	for _, ch := range specials {
		pw := pwHead + string(ch) + pwTail
		t.Run(fmt.Sprintf("%q", ch), func(t *testing.T) {
			valid := map[string]func() (provider.Config, error){
				"url":      urlOf("postgres://app:" + percentEncode(pw) + "@db.example.com:5432/shop"),
				"url_host": urlOf("postgres://app:" + percentEncode(pw) + "@h1:5432,h2:5433/shop?target_session_attrs=read-write"),
				"kv":       urlOf("host=db user=app dbname=shop password=" + kvQuote(pw)),
				"map":      mapOf2("password", pw, "host", "db"),
				"legacy":   mapOf2("db_user_pw", pw, "db_host", "db"),
				"sslpw":    mapOf2("password", pw, "conn_params", map[string]any{"sslpassword": pw}),
			}
			malformed := map[string]func() (provider.Config, error){
				"url raw port":        urlOf("postgres://pwuser:" + pw + "@host:70000/db"),
				"url bad port":        urlOf("postgres://app:" + percentEncode(pw) + "@db:x/shop"),
				"url bad query":       urlOf("postgres://app:" + percentEncode(pw) + "@db/shop?pool_size=%zz"),
				"url bad escape":      urlOf("postgres://app:" + pw + "%zz@db/shop"),
				"url bad setting":     urlOf("postgres://app:" + percentEncode(pw) + "@db/shop?target_session_attrs=" + percentEncode(pw)),
				"kv bad port":         urlOf("host=db password=" + kvQuote(pw) + " port=x"),
				"kv unterminated":     urlOf("host=db password='" + pw),
				"kv raw":              urlOf("host=db password=" + pw + " port=x"),
				"map bad":             mapOf2("password", pw, "port", "x"),
				"map bad sslmode":     mapOf2("db_user_pw", pw, "sslmode", pw),
				"map bad app name":    mapOf2("password", pw, "application_name", pw+"\x00"),
				"map bad conn params": mapOf2("password", pw, "conn_params", map[string]any{"sslpassword": pw, "keepalives": pw}),
			}
			for name, parse := range valid {
				cfg, err := parse()
				require.NoError(t, err, name)
				require.Contains(t, []string{pw, ""}, cfg.Password, name)
				assertHidden(t, pw, cfg, name)
				assertHidden(t, pw, &cfg, name+" pointer")
			}
			// Unescaped in a URL, some of these characters are legal, others are not.
			if cfg, err := provider.ParseConfig("postgres://app:" + pw + "@db.example.com/shop"); err != nil {
				assertHidden(t, pw, err, "url raw")
			} else {
				assertHidden(t, pw, cfg, "url raw")
			}
			for name, parse := range malformed {
				_, err := parse()
				require.Error(t, err, name)
				assertHidden(t, pw, err, name)
			}

			// Struct form: invalid, and valid but refused by pgx.
			cfg := provider.Config{Password: pw, Port: 70000, SSLMode: pw, ConnParams: map[string]string{"sslpassword": pw}}
			assertHidden(t, pw, cfg.Validate(), "struct")
			cfg = provider.DefaultConfig()
			cfg.Password, cfg.ConnParams = pw, map[string]string{"sslpassword": pw, "target_session_attrs": "never"}
			assertHidden(t, pw, cfg.Validate(), "struct refused by pgx")
		})
	}
}

func TestNoPartOfAPasswordShowsWhenConnectingFails(t *testing.T) {
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	for _, ch := range specials {
		pw := pwHead + string(ch) + pwTail
		cfg, err := provider.ParseConfig(fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/shop?sslmode=disable&connect_retry_timeout=300ms",
			percentEncode(pw), port))
		require.NoError(t, err)
		logger, logs := newLogger()
		_, err = provider.New(context.Background(), cfg, provider.WithLogger(logger), provider.WithBackoff(fastBackOff))
		require.Error(t, err)
		assertHidden(t, pw, err, "connect error")
		assert.NotContains(t, logs.String(), pwHead)
		assert.NotContains(t, logs.String(), pwTail)
	}
}

func FuzzPasswordNeverShown(f *testing.F) {
	for _, ch := range specials {
		f.Add(string(ch), uint8(0), "")
		f.Add("a"+string(ch)+"b", uint8(3), "&pool_size=x")
	}
	f.Add("", uint8(1), " port=x")
	f.Add("x'y", uint8(2), "@h:0/db")
	f.Fuzz(func(t *testing.T, middle string, form uint8, extra string) {
		if strings.ContainsAny(middle+extra, pwHead+pwTail) {
			return // the markers must stay unique
		}
		pw := pwHead + middle + pwTail
		var cfg provider.Config
		var err error
		switch form % 6 {
		case 0: // URL, password escaped
			cfg, err = provider.ParseConfig("postgres://app:" + percentEncode(pw) + "@db/shop?" + extra)
		case 1: // keyword/value, password quoted
			cfg, err = provider.ParseConfig("host=db user=app password=" + kvQuote(pw) + extra)
		case 2: // URL, password raw: where the password ends is ambiguous
			cfg, err = provider.ParseConfig("postgres://app:" + pw + extra)
		case 3: // map
			cfg, err = provider.ConfigFromMap(map[string]any{"password": pw, "host": extra})
		case 4: // struct
			cfg = provider.DefaultConfig()
			cfg.Password, cfg.Host = pw, extra
			err = cfg.Validate()
		case 5: // keyword/value, password raw
			cfg, err = provider.ParseConfig("password=" + pw + extra)
		}
		if err != nil {
			if form%6 == 2 || form%6 == 5 {
				// The input does not say where the password ends: nothing of it may show.
				for format, s := range printed(err) {
					if strings.Contains(s, pw) || strings.Contains(s, pwHead) {
						t.Fatalf("%s of the error shows the password: %s", format, s)
					}
				}
				return
			}
			assertHidden(t, pw, err, "error")
			return
		}
		switch {
		case form%6 == 2 || form%6 == 5:
			// The string said where the password ends; what follows it is other settings.
			if len(cfg.Password) >= 3 {
				assertNotShown(t, cfg, "config", cfg.Password)
			}
		default:
			assertHidden(t, pw, cfg, "config")
		}
	})
}
