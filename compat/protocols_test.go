package compat_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/compat"
	"github.com/uno-framework/uno/provider"
	"github.com/uno-framework/uno/tests/pgtest"
)

// TestProtocolAliases uses the legacy interface names with the new values and the
// legacy ones: they are the provider package's interfaces under another name.
func TestProtocolAliases(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	legacy, err := compat.NewUnoDatabaseProvider(ctx, legacyConfig(t), provider.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(legacy.Close)
	cfg, err := provider.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	current, err := provider.New(ctx, cfg, provider.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(current.Close)

	for name, p := range map[string]compat.UnoDatabaseProviderProtocol{"legacy": legacy, "provider": current} {
		require.NoError(t, p.HealthCheck(ctx), name)
		var asNew provider.DatabaseProvider = p // the same type: no conversion
		assert.NotNil(t, asNew.Pool(), name)
	}
	database := pgtest.PoolConfig(t).ConnConfig.Database
	for name, m := range map[string]compat.UnoDBManagerProtocol{"legacy": compat.NewUnoDBManager(legacy), "provider": current.Admin()} {
		exists, err := m.DatabaseExists(ctx, database)
		require.NoError(t, err, name)
		assert.True(t, exists, "%s: the package database exists", name)
	}
}

// TestProtocolAliasesAreDeprecated checks the doc comments that make tools flag the
// legacy names and name their replacements.
func TestProtocolAliasesAreDeprecated(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "protocols.go", nil, parser.ParseComments)
	require.NoError(t, err)
	want := map[string]string{
		"UnoDatabaseProviderProtocol": "Deprecated: use [provider.DatabaseProvider].",
		"UnoDBManagerProtocol":        "Deprecated: use [provider.DatabaseManager].",
	}
	found := map[string]bool{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.TYPE {
			continue
		}
		spec := gen.Specs[0].(*ast.TypeSpec)
		line, ok := want[spec.Name.Name]
		if !ok {
			continue
		}
		found[spec.Name.Name] = true
		assert.True(t, spec.Assign.IsValid(), "%s must be an alias", spec.Name.Name)
		assert.Contains(t, strings.Split(gen.Doc.Text(), "\n"), line, "%s's doc comment", spec.Name.Name)
	}
	assert.Len(t, found, len(want))
}
