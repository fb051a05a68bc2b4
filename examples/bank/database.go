package bank

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/uno-framework/uno/provider"
)

// OpenFreshDatabase drops database name on the server at url (if it exists) and creates
// it anew, then returns a provider connected to it, built with opts. application names
// the examples' connections (application_name). The examples start from an empty
// database every run; a service never drops its own.
func OpenFreshDatabase(ctx context.Context, url, name, application string, logger *slog.Logger, opts ...provider.Option) (*provider.Provider, error) {
	cfg, err := provider.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ApplicationName = application
	admin, err := provider.New(ctx, cfg, provider.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := admin.Admin().DropDatabase(ctx, name, provider.DropIfExists(), provider.DropForce()); err != nil {
		return nil, fmt.Errorf("bank: drop the example's database: %w", err)
	}
	if err := admin.Admin().CreateDatabase(ctx, name); err != nil {
		return nil, fmt.Errorf("bank: create the example's database: %w", err)
	}
	cfg.Database = name
	return provider.New(ctx, cfg, append([]provider.Option{provider.WithLogger(logger)}, opts...)...)
}
