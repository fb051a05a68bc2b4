package schema

import "context"

// Plan returns the statements Migrate would run on db, without running them.
func Plan(ctx context.Context, db Database) ([]string, error) {
	var cmds []string
	err := Migrate(ctx, db, func(c *migrateConfig) { c.plan = func(p []string) { cmds = p } })
	return cmds, err
}
