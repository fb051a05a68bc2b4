package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
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

// TestUseCasesThroughEachBroker runs the example with each broker (skipped where the
// broker does not answer) and checks that the committed events, and only they, come
// back through it.
func TestUseCasesThroughEachBroker(t *testing.T) {
	for _, tc := range []struct{ broker, addr string }{
		{"nats", "127.0.0.1:4222"},
		{"rabbitmq", "127.0.0.1:5672"},
	} {
		t.Run(tc.broker, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", tc.addr, 2*time.Second)
			if err != nil {
				t.Skipf("%s unreachable at %s: %v", tc.broker, tc.addr, err)
			}
			_ = conn.Close()
			t.Setenv("DATABASE_URL", pgtest.ConnString(t))
			dbName := fmt.Sprintf("uno_brokers_test_%d_%d", os.Getpid(), time.Now().UnixNano())
			t.Cleanup(func() {
				_, err := pgtest.Conn(t).Exec(context.Background(),
					"DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
				assert.NoError(t, err)
			})
			var out bytes.Buffer
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			require.NoError(t, run(context.Background(), &out, logger, options{
				broker: tc.broker, natsURL: "nats://" + tc.addr, amqpURL: "amqp://guest:guest@" + tc.addr + "/", database: dbName,
			}))
			got := out.String()
			t.Log("\n" + got)
			assert.Contains(t, got, "events received through "+tc.broker+" (3)")
			assert.Equal(t, 2, strings.Count(got, "account.opened"))
			assert.Equal(t, 1, strings.Count(got, "transfer.completed"))
			assert.NotContains(t, got, "bonus.granted", "the bonus scope rolled back: its event is not published")
		})
	}
}
