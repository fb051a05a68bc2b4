package provider_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uno-framework/uno/provider"
)

// checkResult asserts what must hold for any input: an error is a ValidationErrors of
// named problems; a Config is valid and survives String -> ParseConfig.
func checkResult(t *testing.T, cfg provider.Config, err error) {
	t.Helper()
	if err != nil {
		var verrs provider.ValidationErrors
		if !errors.As(err, &verrs) || len(verrs) == 0 {
			t.Fatalf("error is not a non-empty ValidationErrors: %T %v", err, err)
		}
		for _, fe := range verrs {
			if fe.Path == "" || fe.Message == "" {
				t.Fatalf("problem without path or message: %#v", fe)
			}
		}
		return
	}
	if verr := cfg.Validate(); verr != nil {
		t.Fatalf("returned an invalid config: %v", verr)
	}
	back, err := provider.ParseConfig(cfg.String())
	if err != nil {
		t.Fatalf("String() %q does not parse back: %v", cfg.String(), err)
	}
	if cfg.Password != "" && !strings.Contains(cfg.String(), "xxxxx") {
		t.Fatalf("String() does not redact the password: %q", cfg.String())
	}
	want := cfg
	want.Password, back.Password = "", ""
	if !reflect.DeepEqual(want, back) {
		t.Fatalf("String() round trip changed the config: %q:\n%+v\n%+v", cfg.String(), want, back)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"postgres://app:s3cr3t-PA55@db.example.com:5432/shop?sslmode=require&pool_size=20",
		"postgresql://[::1]:5433/db?application_name=x&connect_timeout=10",
		"postgres://u@/db?host=/tmp&port=5434&search_path=a,b",
		"postgres://u@h1,h2/db",
		"postgres://u:p@host:70000/db",
		"postgres://u:p%zz@host/db",
		"postgres://%",
		"postgres://u@h/db?pool_max_conns=0&min_conns=-1",
		"host=db port=6432 user=app password='it\\'s' dbname=shop",
		"host='unterminated",
		"host=h dbname",
		"=value",
		"a=b c=d e='f g' h=\\",
		"mysql://x",
		"just words",
		"host=h connect_timeout=1e300",
		"host=h acquire_timeout=-5",
		"host=h runtime_params=x",
		"host=h user=\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := provider.ParseConfig(s)
		checkResult(t, cfg, err)
	})
}

func FuzzConfigFromMap(f *testing.F) {
	f.Add("host", uint8(0), "db.example.com", int64(0), 0.0)
	f.Add("db_port", uint8(1), "", int64(5432), 0.0)
	f.Add("port", uint8(2), "", int64(0), 70000.0)
	f.Add("pool_size", uint8(3), "12", int64(0), 0.0)
	f.Add("db_user_pw", uint8(0), "s3cr3t-PA55", int64(0), 0.0)
	f.Add("connect_timeout", uint8(2), "", int64(0), 1.5)
	f.Add("acquire_timeout", uint8(0), "-3s", int64(0), 0.0)
	f.Add("runtime_params", uint8(4), "search_path", int64(0), 0.0)
	f.Add("min_conns", uint8(5), "", int64(0), 0.0)
	f.Add("sslmode", uint8(6), "{}", int64(0), 0.0)
	f.Add("max_conn_lifetime", uint8(7), "", int64(-1), 0.0)
	f.Add("DB_HOST", uint8(0), "", int64(0), 0.0)
	f.Add("unknown", uint8(1), "", int64(1), 0.0)
	f.Fuzz(func(t *testing.T, key string, kind uint8, s string, i int64, fl float64) {
		var v any
		switch kind % 8 {
		case 0:
			v = s
		case 1:
			v = i
		case 2:
			v = fl
		case 3:
			v = json.Number(s)
		case 4:
			v = map[string]any{s: s, "x": i}
		case 5:
			v = nil
		case 6:
			var decoded any
			if json.Unmarshal([]byte(s), &decoded) == nil {
				v = decoded
			}
		case 7:
			v = time.Duration(i)
		}
		m := map[string]any{key: v, "pool_size": i, "db_host": s}
		cfg, err := provider.ConfigFromMap(m)
		checkResult(t, cfg, err)
	})
}
