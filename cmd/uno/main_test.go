package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// binary builds the uno command into dir and returns its path.
func binary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "uno")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// result is what a run of the binary did.
type result struct {
	code   int
	stdout string
	stderr string
}

// uno runs the binary with args and env (on top of an environment without database
// variables) and returns what it did.
func uno(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run uno %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func decodeJSON[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return v
}

// failingOnce is a publisher that fails the first publish of each message and records
// the messages it published.
type failingOnce struct {
	mu        sync.Mutex
	seen      map[string]bool
	published []*message.Message
}

func (p *failingOnce) Publish(_ string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if !p.seen[m.UUID] {
			p.seen[m.UUID] = true
			return errors.New("broker down")
		}
	}
	p.published = append(p.published, msgs...)
	return nil
}

func (p *failingOnce) Close() error { return nil }

func (p *failingOnce) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.published)
}

// TestCommandAgainstARealDatabase builds the binary and runs every command against the
// package's database: errors first (no URL, a bad one, an unreachable server, tables
// missing), then migrate, the outbox with decoded events, dead letters from a relay
// whose broker fails, requeued and then delivered, and health — in human and JSON form.
func TestCommandAgainstARealDatabase(t *testing.T) {
	bin := binary(t, t.TempDir())
	url := pgtest.ConnString(t)
	db := []string{"DATABASE_URL=" + url}
	ctx := t.Context()

	t.Run("usage", func(t *testing.T) {
		r := uno(t, bin, db)
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "no command given")
		assert.Equal(t, exitUsage, uno(t, bin, db, "frobnicate").code)
		assert.Equal(t, exitUsage, uno(t, bin, db, "deadletters", "show", "abc").code)
		assert.Equal(t, exitUsage, uno(t, bin, db, "deadletters", "purge").code)
		r = uno(t, bin, db, "--help")
		assert.Equal(t, exitOK, r.code)
		assert.Contains(t, r.stdout, "exit codes:")
	})

	t.Run("configuration", func(t *testing.T) {
		r := uno(t, bin, nil, "outbox", "lag")
		assert.Equal(t, exitConfig, r.code)
		assert.Contains(t, r.stderr, "no database: give --database-url or set DATABASE_URL")
		r = uno(t, bin, nil, "--database-url", "postgres://u:secret@localhost:notaport/x", "outbox", "lag")
		assert.Equal(t, exitConfig, r.code, r.stderr)
		assert.Contains(t, r.stderr, "--database-url")
		assert.NotContains(t, r.stderr, "secret")
		r = uno(t, bin, nil, "--json", "--database-url", "postgres://u@127.0.0.1:1/x", "--timeout", "2s", "health")
		assert.Equal(t, exitUnreachable, r.code, r.stderr)
		e := decodeJSON[map[string]any](t, result{stdout: r.stderr})
		assert.EqualValues(t, exitUnreachable, e["exit_code"])
	})

	t.Run("not migrated", func(t *testing.T) {
		for _, args := range [][]string{{"outbox", "lag"}, {"outbox", "pending"}, {"deadletters", "list"}, {"health"}} {
			r := uno(t, bin, db, args...)
			assert.Equal(t, exitNotMigrated, r.code, "%v: %s", args, r.stderr)
			assert.Contains(t, r.stderr, "uno migrate", args)
		}
	})

	t.Run("migrate --sql", func(t *testing.T) {
		r := uno(t, bin, nil, "migrate", "--sql") // no database needed
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, schema.SQL(), r.stdout)
		assert.Contains(t, r.stdout, "CREATE TABLE")
		r = uno(t, bin, nil, "migrate", "--sql", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, schema.SQL(), decodeJSON[map[string]string](t, r)["sql"])
	})

	t.Run("migrate", func(t *testing.T) {
		r := uno(t, bin, db, "migrate")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "applied")
		assert.Contains(t, r.stdout, "uno_outbox")
		r = uno(t, bin, db, "migrate", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Empty(t, decodeJSON[map[string][]change](t, r)["changes"], "a second run changes nothing")
	})

	pool := pgtest.Pool(t)
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	outbox := events.NewOutbox(events.OutboxConfig{})
	type opened struct {
		ID    int    `json:"id"`
		Owner string `json:"owner"`
	}
	require.NoError(t, tm.Do(ctx, func(ctx context.Context) error {
		return outbox.Emit(ctx,
			events.New("account.opened", opened{ID: 7, Owner: "alice"}, events.WithKey("7"), events.WithType("AccountOpened")),
			events.New("note.text", []byte("plain words"), events.WithKey("n1")),
			events.New("blob", []byte{0xff, 0x00, 0xfe}))
	}))

	t.Run("outbox", func(t *testing.T) {
		r := uno(t, bin, db, "outbox", "lag", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.EqualValues(t, 3, decodeJSON[lagJSON](t, r).Pending)

		r = uno(t, bin, db, "outbox", "pending", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		list := decodeJSON[[]map[string]any](t, r)
		require.Len(t, list, 3)
		assert.Equal(t, "account.opened", list[0]["topic"], "the oldest first")
		pending := map[string]map[string]any{}
		for _, ev := range list {
			pending[ev["topic"].(string)] = ev
		}
		assert.Equal(t, "7", pending["account.opened"]["key"])
		assert.Equal(t, "AccountOpened", pending["account.opened"]["type"])
		assert.Equal(t, "json", pending["account.opened"]["payload_encoding"])
		assert.Equal(t, map[string]any{"id": float64(7), "owner": "alice"}, pending["account.opened"]["payload"])
		assert.Equal(t, "text", pending["note.text"]["payload_encoding"])
		assert.Equal(t, "plain words", pending["note.text"]["payload"])
		assert.Equal(t, "base64", pending["blob"]["payload_encoding"])
		assert.Equal(t, "/wD+", pending["blob"]["payload"])

		r = uno(t, bin, db, "outbox", "pending", "--limit", "1")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "TOPIC")
		assert.Contains(t, r.stdout, `{"id":7,"owner":"alice"}`)
		assert.NotContains(t, r.stdout, "plain words", "--limit 1")
		r = uno(t, bin, db, "outbox", "lag")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "PENDING")
	})

	t.Run("dead letters requeued then delivered", func(t *testing.T) {
		pub := &failingOnce{seen: map[string]bool{}}
		relay, err := events.NewRelay(pool, pub, events.RelayConfig{MaxAttempts: 1, Workers: 1,
			PollInterval: 50 * time.Millisecond, RetryBackoff: 10 * time.Millisecond})
		require.NoError(t, err)
		relayCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- relay.Run(relayCtx) }()
		defer func() {
			stop()
			require.NoError(t, <-done)
		}()
		require.Eventually(t, func() bool {
			l, err := events.ReadLag(ctx, pool)
			return err == nil && l.DeadLetters == 3
		}, 20*time.Second, 20*time.Millisecond, "each event fails once and, with MaxAttempts 1, is dead-lettered")

		r := uno(t, bin, db, "deadletters", "list", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		dls := decodeJSON[[]deadLetterJSON](t, r)
		require.Len(t, dls, 3)
		var opened deadLetterJSON
		for _, d := range dls {
			assert.Contains(t, d.LastError, "broker down")
			if d.Event.Topic == "account.opened" {
				opened = d
			}
		}
		require.NotZero(t, opened.ID)
		r = uno(t, bin, db, "deadletters", "list")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "LAST_ERROR")

		r = uno(t, bin, db, "deadletters", "show", "--json", itoa(opened.ID))
		require.Equal(t, exitOK, r.code, r.stderr)
		shown := decodeJSON[map[string]any](t, r)
		assert.Equal(t, map[string]any{"id": float64(7), "owner": "alice"}, shown["event"].(map[string]any)["payload"])
		r = uno(t, bin, db, "deadletters", "show", itoa(opened.ID))
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "payload (json)")
		assert.Contains(t, r.stdout, "broker down")
		assert.Equal(t, exitNotFound, uno(t, bin, db, "deadletters", "show", "999999999").code)

		// Requeue one: the relay publishes it again, and this time the broker takes it.
		r = uno(t, bin, db, "deadletters", "requeue", itoa(opened.ID))
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "requeued 1 of 1")
		require.Eventually(t, func() bool { return pub.count() == 1 }, 20*time.Second, 20*time.Millisecond)
		pub.mu.Lock()
		delivered := pub.published[0]
		pub.mu.Unlock()
		assert.Equal(t, opened.Event.ID, delivered.UUID, "the requeued event keeps its ID")
		assert.JSONEq(t, `{"id":7,"owner":"alice"}`, string(delivered.Payload))

		r = uno(t, bin, db, "--json", "deadletters", "requeue", itoa(opened.ID))
		assert.Equal(t, exitNotFound, r.code, "requeued already")

		r = uno(t, bin, db, "deadletters", "purge", "--older-than", "7d", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.EqualValues(t, 0, decodeJSON[map[string]int64](t, r)["purged"], "none is a week old")
		r = uno(t, bin, db, "deadletters", "purge", "--older-than", "0s")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "purged 2 dead letter(s)")

		r = uno(t, bin, db, "--json", "outbox", "lag")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, lagJSON{}, decodeJSON[lagJSON](t, r))
	})

	t.Run("health", func(t *testing.T) {
		r := uno(t, bin, db, "health", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		h := decodeJSON[healthJSON](t, r)
		assert.True(t, h.Reachable)
		assert.True(t, h.Migrated)
		assert.NotEmpty(t, h.ServerVersion)
		require.NotNil(t, h.Outbox)
		r = uno(t, bin, nil, "--database-url", url, "health")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "reachable:")
	})
	pgtest.RequireNoAcquired(t, pool)
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }
