package uowtest_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/uowtest"
)

// notesDB is the template of the per-test databases.
var notesDB = &uowtest.Template{Name: "uowtest_notes", Version: "1", Migrate: migrateNotes}

// migrateShared migrates the package database once.
var migrateShared sync.Once

// sharedApp returns the application on the package database, which all tests share.
func sharedApp(t *testing.T) (*notes, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t)
	migrateShared.Do(func() {
		require.NoError(t, schema.MigratePool(context.Background(), pool))
		require.NoError(t, migrateNotes(context.Background(), pool))
	})
	app, err := newNotes(pool)
	require.NoError(t, err)
	return app, pool
}

func committedNotes(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT text FROM notes ORDER BY id")
	require.NoError(t, err)
	var texts []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		texts = append(texts, s)
	}
	require.NoError(t, rows.Err())
	return texts
}

// TestParallelTestsInTransactionsSeeOnlyTheirOwn: two tests run at once on one
// database, each in a transaction of its own: each sees its rows and events only, and
// nothing is committed.
func TestParallelTestsInTransactionsSeeOnlyTheirOwn(t *testing.T) {
	app, pool := sharedApp(t)
	var ready sync.WaitGroup
	ready.Add(2)
	t.Run("group", func(t *testing.T) {
		for _, text := range []string{"alpha", "beta"} {
			t.Run(text, func(t *testing.T) {
				t.Parallel()
				ctx := uowtest.Begin(t, app.units)
				id, err := app.Create(ctx, text)
				require.NoError(t, err)
				// Both tests have created their note before either looks.
				ready.Done()
				ready.Wait()

				n, err := app.Count(ctx)
				require.NoError(t, err)
				assert.Equal(t, 1, n, "the other test's note is invisible")
				evs := uowtest.Emitted(t, ctx)
				require.Len(t, evs, 1, "the other test's event is invisible")
				uowtest.RequireEmitted(t, ctx, uowtest.Match{Topic: "note.created", Key: fmt.Sprint(id),
					Payload: NoteCreated{ID: id, Text: text}})
			})
		}
	})
	assert.Empty(t, committedNotes(t, pool), "the tests' transactions rolled back")
	pending, err := events.ReadPending(context.Background(), pool, 0)
	require.NoError(t, err)
	assert.Empty(t, pending, "no event reached the outbox")
	pgtest.RequireNoAcquired(t, pool)
}

// TestParallelTestsInDatabasesSeeOnlyTheirOwn: two tests run at once, each in a fresh
// database cloned from the migrated template; the use-cases really commit.
func TestParallelTestsInDatabasesSeeOnlyTheirOwn(t *testing.T) {
	for _, text := range []string{"alpha", "beta"} {
		t.Run(text, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewPool(t, mustParse(t, uowtest.NewDatabase(t, notesDB)))
			app, err := newNotes(pool)
			require.NoError(t, err)
			_, err = app.Create(t.Context(), text)
			require.NoError(t, err)

			assert.Equal(t, []string{text}, committedNotes(t, pool))
			pending, err := events.ReadPending(t.Context(), pool, 0)
			require.NoError(t, err)
			require.Len(t, pending, 1)
			assert.JSONEq(t, fmt.Sprintf(`{"id":1,"text":%q}`, text), string(pending[0].Payload.([]byte)))
		})
	}
}

func mustParse(t *testing.T, url string) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	return cfg
}

// TestAFailedUseCaseRollsBackOnlyItself: in the test's transaction, a use-case that
// fails drops its rows and events, as it would alone, and the test goes on.
func TestAFailedUseCaseRollsBackOnlyItself(t *testing.T) {
	app, _ := sharedApp(t)
	ctx := uowtest.Begin(t, app.units)

	_, err := app.Create(ctx, "kept")
	require.NoError(t, err)
	_, err = app.Create(ctx, "") // violates the CHECK constraint
	require.ErrorContains(t, err, "store the note")
	id, err := app.Create(ctx, "after the failure")
	require.NoError(t, err)

	n, err := app.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	evs := uowtest.Emitted(t, ctx)
	require.Len(t, evs, 2)
	assert.Equal(t, NoteCreated{ID: id, Text: "after the failure"}, uowtest.Payload[NoteCreated](t, ctx, evs[1]))
	uowtest.RequireNotEmitted(t, ctx, uowtest.Match{Payload: NoteCreated{Text: ""}})
}

// fatalRecorder is a testing.TB whose Fatal and Fatalf record the message and end the
// goroutine, as testing.T's do.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with r in a goroutine of its own and returns the recorded failure.
func (r *fatalRecorder) run(fn func(tb testing.TB)) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.msg
}

func TestRequireEmittedSaysWhatWasEmitted(t *testing.T) {
	app, _ := sharedApp(t)
	ctx := uowtest.Begin(t, app.units)
	id, err := app.Create(ctx, "hello")
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		m    uowtest.Match
		ok   bool
	}{
		{"topic", uowtest.Match{Topic: "note.created"}, true},
		{"everything", uowtest.Match{Topic: "note.created", Key: fmt.Sprint(id), Payload: NoteCreated{id, "hello"}}, true},
		{"raw payload", uowtest.Match{Payload: []byte(fmt.Sprintf(`{"id":%d,"text":"hello"}`, id))}, true},
		{"other topic", uowtest.Match{Topic: "note.deleted"}, false},
		{"other key", uowtest.Match{Topic: "note.created", Key: "nope"}, false},
		{"other payload", uowtest.Match{Payload: NoteCreated{id, "bye"}}, false},
		{"other type", uowtest.Match{Type: "Note"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fatalRecorder{TB: t}
			msg := r.run(func(tb testing.TB) { uowtest.RequireEmitted(tb, ctx, tc.m) })
			if tc.ok {
				assert.Empty(t, msg)
				return
			}
			assert.Contains(t, msg, "no emitted event matches "+tc.m.String())
			assert.Contains(t, msg, fmt.Sprintf(`topic="note.created" key="%d" type="" payload={"id":%d,"text":"hello"}`, id, id))
		})
	}
	r := &fatalRecorder{TB: t}
	assert.Contains(t, r.run(func(tb testing.TB) { uowtest.RequireNotEmitted(tb, ctx, uowtest.Match{Topic: "note.created"}) }),
		"an emitted event matches topic=\"note.created\", want none")
	r = &fatalRecorder{TB: t}
	assert.Contains(t, r.run(func(tb testing.TB) { uowtest.Emitted(tb, t.Context()) }),
		"the context does not come from uowtest.Begin")
}

// TestDeliverRunsHandlersInTheTestsTransaction: Deliver hands the emitted events to the
// subscriber's handler synchronously; its writes join the test's transaction, and with
// the Inbox a second delivery has no effect.
func TestDeliverRunsHandlersInTheTestsTransaction(t *testing.T) {
	app, pool := sharedApp(t)
	ctx := uowtest.Begin(t, app.units)
	_, err := app.Create(ctx, "one")
	require.NoError(t, err)
	_, err = app.Create(ctx, "two")
	require.NoError(t, err)

	inbox, err := events.NewInbox(app.tm, events.InboxConfig{Consumer: "notes"})
	require.NoError(t, err)
	h := inbox.Middleware(events.Handler(app.OnNoteCreated))
	for range 2 {
		n, err := uowtest.Deliver(t, ctx, h, "note.created")
		require.NoError(t, err)
		assert.Equal(t, 2, n)
	}
	handled, err := app.Handled(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, handled, "each event handled once: the inbox skipped the redeliveries")

	n, err := uowtest.Deliver(t, ctx, events.Handler(app.OnNoteCreated), "other.topic")
	require.NoError(t, err)
	assert.Zero(t, n)

	failing := events.Handler(func(ctx context.Context, ev events.Received[NoteCreated]) error {
		return fmt.Errorf("cannot handle %q", ev.Payload.Text)
	})
	n, err = uowtest.Deliver(t, ctx, failing)
	assert.Zero(t, n)
	require.ErrorContains(t, err, `cannot handle "one"`)

	var committed int64
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT handled FROM note_stats").Scan(&committed))
	assert.Zero(t, committed, "nothing is committed")
}
