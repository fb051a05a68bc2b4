package sqldriver_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/sqldriver"
)

// Build the *sql.DB once at start-up; database/sql code given a ctx that carries a
// transaction joins it, and rolls back with it.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.URL())
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer pool.Close()
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	db := sqldriver.Open(tm)
	defer db.Close()

	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS example_notes (body text); TRUNCATE example_notes`); err != nil {
		fmt.Println(err)
		return
	}
	errChanged := errors.New("changed my mind")
	err = tm.Do(ctx, func(ctx context.Context) error {
		if _, err := db.ExecContext(ctx, `INSERT INTO example_notes VALUES ($1)`, "draft"); err != nil {
			return err
		}
		return errChanged // rolls back the insert
	})
	fmt.Println(err)
	err = tm.Do(ctx, func(ctx context.Context) error {
		_, err := db.ExecContext(ctx, `INSERT INTO example_notes VALUES ($1)`, "final")
		return err
	})
	fmt.Println(err)

	var notes int
	_ = db.QueryRowContext(ctx, `SELECT count(*) FROM example_notes`).Scan(&notes)
	fmt.Println(notes, "note")
	// Output:
	// changed my mind
	// <nil>
	// 1 note
}
