package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestQuickstart runs the demo end to end (on the server the harness found, in a
// database of its own) and checks what it prints: the committed events only, and the
// balances the committed use-cases leave.
func TestQuickstart(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.ConnString(t))
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A name of its own per run, so that runs sharing a server never collide.
	dbName := fmt.Sprintf("uno_quickstart_test_%d_%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		_, err := pgtest.Conn(t).Exec(context.Background(),
			"DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
		assert.NoError(t, err)
	})
	require.NoError(t, run(context.Background(), &out, logger, dbName))
	got := out.String()
	t.Log("\n" + got)

	assert.Contains(t, got, "transfer 30 alice→bob with a 1000 bonus: committed")
	assert.Contains(t, got, "transfer 500 bob→alice:                  rolled back (a balance would go negative)")
	assert.Contains(t, got, "events received by the subscriber (3; still in the outbox: 0)")
	assert.Equal(t, 2, strings.Count(got, "account.opened"))
	assert.Equal(t, 1, strings.Count(got, "transfer.completed"))
	assert.NotContains(t, got, "bonus.granted", "the bonus scope rolled back: its event must not be delivered")
	assert.Contains(t, got, "alice    70")
	assert.Contains(t, got, "bob      80")
}
