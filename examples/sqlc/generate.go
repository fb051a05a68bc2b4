package sqlcexample

// The generator is pinned; it builds libpg_query with cgo (a C compiler is needed, and
// the first build takes minutes), which is why CI runs the generated code rather than
// regenerating it. Regenerate after changing schema.sql, query.sql or sqlc.yaml, and
// commit db/.
//go:generate go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1 generate
