package uowtest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/uow"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The application under test: notes, created by a use-case that emits note.created.

// NoteCreated is the payload of "note.created".
type NoteCreated struct {
	ID   int64  `json:"id"`
	Text string `json:"text"`
}

// migrateNotes is the application's migration.
func migrateNotes(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS notes (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		text text NOT NULL CHECK (text <> ''))
	;CREATE TABLE IF NOT EXISTS note_stats (handled bigint NOT NULL)
	;INSERT INTO note_stats SELECT 0 WHERE NOT EXISTS (SELECT FROM note_stats)`)
	return err
}

// notes is the application: its use-cases and its subscriber.
type notes struct {
	tm    *txmanager.Manager
	units *uow.Manager
}

func newNotes(pool *pgxpool.Pool) (*notes, error) {
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		return nil, err
	}
	units, err := uow.NewManager(tm, nil)
	if err != nil {
		return nil, err
	}
	return &notes{tm: tm, units: units}, nil
}

// Create is a use-case: it stores a note and emits note.created.
func (n *notes) Create(ctx context.Context, text string) (int64, error) {
	var id int64
	err := n.units.Do(ctx, func(ctx context.Context, u *uow.UnitOfWork) error {
		if err := n.tm.Querier(ctx).QueryRow(ctx,
			"INSERT INTO notes (text) VALUES ($1) RETURNING id", text).Scan(&id); err != nil {
			return fmt.Errorf("store the note: %w", err)
		}
		return u.Emit(events.New("note.created", NoteCreated{ID: id, Text: text}, events.WithKey(fmt.Sprint(id))))
	})
	return id, err
}

// Count is a query.
func (n *notes) Count(ctx context.Context) (int, error) {
	var c int
	err := n.tm.Querier(ctx).QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&c)
	return c, err
}

// OnNoteCreated is the subscriber's handler: it counts the notes handled.
func (n *notes) OnNoteCreated(ctx context.Context, ev events.Received[NoteCreated]) error {
	_, err := n.tm.Querier(ctx).Exec(ctx, "UPDATE note_stats SET handled = handled + 1")
	return err
}

// Handled returns the counter of the subscriber.
func (n *notes) Handled(ctx context.Context) (int64, error) {
	var c int64
	err := n.tm.Querier(ctx).QueryRow(ctx, "SELECT handled FROM note_stats").Scan(&c)
	return c, err
}
