package uowtest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/uowtest"
)

// A test of a use-case, in the test's own transaction: the use-case runs as it does in
// production; the test sees its rows and events, delivers the events to the
// subscriber's handler, and everything rolls back when the test ends.
func Example_transaction() {
	t := newExampleT() // in a test: the *testing.T
	defer t.finish()

	// In a test, the application is built once per test (or package) on its pool.
	pool, err := pgxpool.New(t.Context(), uowtest.NewDatabase(t, notesDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	app, err := newNotes(pool)
	if err != nil {
		t.Fatal(err)
	}

	ctx := uowtest.Begin(t, app.units)
	id, err := app.Create(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Create(ctx, ""); err == nil { // fails: rolls back alone, with its event
		t.Fatal("an empty note was accepted")
	}

	ev := uowtest.RequireEmitted(t, ctx, uowtest.Match{Topic: "note.created", Payload: NoteCreated{ID: id, Text: "hello"}})
	fmt.Printf("emitted %s key=%s, %d event(s) in all\n", ev.Topic, ev.Key, len(uowtest.Emitted(t, ctx)))

	n, err := uowtest.Deliver(t, ctx, events.Handler(app.OnNoteCreated))
	if err != nil {
		t.Fatal(err)
	}
	handled, err := app.Handled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("delivered %d, handled %d\n", n, handled)
	// Output:
	// emitted note.created key=1, 1 event(s) in all
	// delivered 1, handled 1
}

// A test in a database of its own, cloned from the template migrated with uno's tables
// and the application's: the use-case commits, and its event waits in the outbox.
func ExampleNewDatabase() {
	t := newExampleT() // in a test: the *testing.T
	defer t.finish()

	pool, err := pgxpool.New(t.Context(), uowtest.NewDatabase(t, notesDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	app, err := newNotes(pool)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := app.Create(t.Context(), "committed"); err != nil {
		t.Fatal(err)
	}
	pending, err := events.ReadPending(t.Context(), pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range pending {
		fmt.Printf("in the outbox: %s %s\n", ev.Topic, ev.Payload)
	}
	// Output:
	// in the outbox: note.created {"id":1,"text":"committed"}
}

// exampleT stands in for the *testing.T of a test, so that the examples read as tests:
// failures panic, and finish runs the cleanups.
type exampleT struct {
	testing.TB
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
}

func newExampleT() *exampleT {
	ctx, cancel := context.WithCancel(context.Background())
	return &exampleT{ctx: ctx, cancel: cancel}
}

func (e *exampleT) Helper()                      {}
func (e *exampleT) Name() string                 { return "Example" }
func (e *exampleT) Context() context.Context     { return e.ctx }
func (e *exampleT) Cleanup(f func())             { e.cleanups = append(e.cleanups, f) }
func (e *exampleT) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (e *exampleT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (e *exampleT) Errorf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// finish ends the test as the testing package does: its context, then its cleanups,
// last registered first.
func (e *exampleT) finish() {
	e.cancel()
	for _, f := range slices.Backward(e.cleanups) {
		f()
	}
}
