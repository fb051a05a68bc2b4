package provider_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/provider"
)

func ExampleParseConfig() {
	cfg, err := provider.ParseConfig("postgres://app:s3cr3t@db.example.com:6432/shop?sslmode=require&pool_size=20")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Host, cfg.Port, cfg.Database, cfg.PoolSize)
	fmt.Println(cfg) // the password is never printed
	// Output:
	// db.example.com 6432 shop 20
	// postgres://app:xxxxx@db.example.com:6432/shop?pool_size=20&sslmode=require
}

func ExampleConfig_Validate() {
	cfg := provider.DefaultConfig()
	cfg.Host = ""
	cfg.Port = 70000
	cfg.PoolSize = 0
	err := cfg.Validate()

	var problems provider.ValidationErrors
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Println(p.Path+":", p.Message)
		}
	}
	// Output:
	// host: must not be empty
	// port: must be between 1 and 65535
	// pool_size: must be between 1 and 10000
}

// ConfigFromMap reads decoded configuration files, including the legacy db_* keys.
func ExampleConfigFromMap() {
	cfg, err := provider.ConfigFromMap(map[string]any{
		"db_host":    "db.internal",
		"db_port":    5433.0, // as encoding/json decodes numbers
		"db_role":    "app",
		"db_name":    "shop",
		"db_user_pw": "s3cr3t",
		"pool_size":  "15",
	})
	fmt.Println(cfg, err)

	_, err = provider.ConfigFromMap(map[string]any{"db_port": true, "pool_size": -1})
	fmt.Println(err)
	// Output:
	// postgres://app:xxxxx@db.internal:5433/shop?pool_size=15 <nil>
	// provider: invalid config: db_port: must be an integer (got bool); pool_size: must be between 1 and 10000
}

func ExampleConfigFromEnv() {
	cfg, err := provider.ConfigFromEnv() // DATABASE_URL, else PGHOST, PGPORT, PGUSER, ...
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Host)
}

func ExampleNew() {
	cfg, err := provider.ConfigFromEnv()
	if err != nil {
		fmt.Println(err)
		return
	}
	// New retries with backoff until the server answers or ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := provider.New(ctx, cfg,
		provider.WithLogger(slog.Default()),
		provider.WithHealthCallback(func(s pool.State) { fmt.Println("database is", s) }),
	)
	var connectErr *pool.ConnectError
	if errors.As(err, &connectErr) {
		fmt.Println("cannot reach", connectErr.Host, "after", connectErr.Attempts, "attempts")
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	var n int
	_ = p.Pool().QueryRow(ctx, "SELECT 1").Scan(&n) // pgx; transactions: txmanager.New(p.Pool(), ...)
	fmt.Println(n)
}

func ExampleProvider_Health() {
	ctx := context.Background()
	p, err := provider.New(ctx, provider.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	r, err := p.Health(ctx)
	if err != nil {
		fmt.Println("unhealthy:", err)
		return
	}
	fmt.Printf("PostgreSQL %s, round trip %s, standby %t, %d/%d connections in use\n",
		r.ServerVersion, r.Latency, r.InRecovery, r.Pool.AcquiredConns, r.Pool.MaxConns)
}

func ExampleAdmin() {
	ctx := context.Background()
	p, err := provider.New(ctx, provider.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	admin := p.Admin()
	// Any name is safe: it is quoted as an identifier.
	if err := admin.CreateDatabase(ctx, `reports "2024"`); err != nil && !errors.Is(err, provider.ErrDatabaseExists) {
		fmt.Println(err)
		return
	}
	ok, _ := admin.DatabaseExists(ctx, `reports "2024"`)
	fmt.Println(ok)
	_ = admin.DropDatabase(ctx, `reports "2024"`, provider.DropIfExists(), provider.DropForce())
}
