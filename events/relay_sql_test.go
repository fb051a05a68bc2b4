package events

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
)

// statements lists every statement of relay_sql.go by name.
var statements = map[string]string{
	"insert":            insertSQL,
	"notify":            notifySQL,
	"notifyAfterCommit": notifyAfterCommitSQL,
	"createLeases":      createLeasesSQL,
	"registerRelay":     registerRelaySQL,
	"forgetDeadRelays":  forgetDeadRelaysSQL,
	"countRelays":       countRelaysSQL,
	"renewLeases":       renewLeasesSQL,
	"releaseLeases":     releaseLeasesSQL,
	"claimLeases":       claimLeasesSQL,
	"unregisterRelay":   unregisterRelaySQL,
	"fetch":             fetchSQL,
	"delete":            deleteSQL,
	"update":            updateSQL,
	"dead":              deadSQL,
	"retryAt":           retryAtSQL,
	"requeueRead":       requeueReadSQL,
	"requeue":           requeueSQL,
	"lag":               lagSQL,
	"pending":           pendingSQL,
	"inbox":             inboxSQL,
	"deadLetters":       deadLettersSQL,
	"deadLetter":        deadLetterSQL,
	"purgeDeadLetters":  purgeDeadLettersSQL,
}

// TestEveryStatementPreparesAgainstTheSchema prepares each statement of relay_sql.go
// on the migrated schema: a column renamed in one and not the other fails here.
func TestEveryStatementPreparesAgainstTheSchema(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.PoolConfig(t))
	require.NoError(t, schema.MigratePool(ctx, pool))
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for name, sql := range statements {
		_, err := conn.Conn().Prepare(ctx, "uno_test_"+name, sql)
		require.NoError(t, err, "statement %s", name)
	}
}
