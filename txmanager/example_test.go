package txmanager_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// exampleSetup connects to the package's test database (set up by TestMain) and
// creates table; the returned func drops it and closes the pool.
func exampleSetup(table string) (*pgxpool.Pool, *txmanager.Manager, func()) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.URL())
	if err != nil {
		panic(err)
	}
	if _, err := pool.Exec(ctx, "create table "+table+" (owner text primary key, balance bigint not null)"); err != nil {
		panic(err)
	}
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		panic(err)
	}
	return pool, tm, func() {
		_, _ = pool.Exec(ctx, "drop table "+table)
		pool.Close()
	}
}

func ExampleManager_Do() {
	pool, tm, done := exampleSetup("example_do")
	defer done()
	ctx := context.Background()

	// Both inserts commit together: BEGIN travels with the first, COMMIT follows fn.
	err := tm.Do(ctx, func(ctx context.Context) error {
		q := tm.Querier(ctx) // the transaction ctx carries
		if _, err := q.Exec(ctx, "insert into example_do values ($1, $2)", "ann", 100); err != nil {
			return err
		}
		_, err := q.Exec(ctx, "insert into example_do values ($1, $2)", "bob", 50)
		return err
	})
	fmt.Println("first:", err)

	// An error rolls everything back.
	err = tm.Do(ctx, func(ctx context.Context) error {
		if _, err := tm.Querier(ctx).Exec(ctx, "insert into example_do values ($1, $2)", "cid", 10); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	fmt.Println("second:", err)

	var n int
	_ = pool.QueryRow(ctx, "select count(*) from example_do").Scan(&n)
	fmt.Println("accounts:", n)
	// Output:
	// first: <nil>
	// second: changed my mind
	// accounts: 2
}

func ExampleNested() {
	pool, tm, done := exampleSetup("example_nested")
	defer done()
	ctx := context.Background()

	err := tm.Do(ctx, func(ctx context.Context) error {
		if _, err := tm.Querier(ctx).Exec(ctx, "insert into example_nested values ('ann', 100)"); err != nil {
			return err
		}
		// A savepoint: its failure undoes only its own work.
		bonusErr := tm.Do(ctx, func(ctx context.Context) error {
			if _, err := tm.Querier(ctx).Exec(ctx, "update example_nested set balance = balance + 10"); err != nil {
				return err
			}
			return errors.New("bonus refused")
		}, txmanager.Nested())
		fmt.Println("bonus:", bonusErr)
		return nil // the transaction goes on and commits
	})
	fmt.Println("transaction:", err)

	var balance int64
	_ = pool.QueryRow(ctx, "select balance from example_nested where owner = 'ann'").Scan(&balance)
	fmt.Println("balance:", balance)
	// Output:
	// bonus: bonus refused
	// transaction: <nil>
	// balance: 100
}

func ExampleOnCommit() {
	_, tm, done := exampleSetup("example_hooks")
	defer done()
	ctx := context.Background()

	err := tm.Do(ctx, func(ctx context.Context) error {
		_ = txmanager.OnCommit(ctx, func(context.Context) error {
			fmt.Println("committed: send the welcome mail")
			return nil
		})
		_ = txmanager.OnRollback(ctx, func(context.Context) error {
			fmt.Println("rolled back")
			return nil
		})
		// Hooks of a scope rolled back to its savepoint are dropped.
		_ = tm.Do(ctx, func(ctx context.Context) error {
			_ = txmanager.OnCommit(ctx, func(context.Context) error {
				fmt.Println("never printed")
				return nil
			})
			return errors.New("scope failed")
		}, txmanager.Nested())
		_, err := tm.Querier(ctx).Exec(ctx, "insert into example_hooks values ('ann', 0)")
		fmt.Println("before commit")
		return err
	})
	fmt.Println("Do:", err)
	// Output:
	// before commit
	// committed: send the welcome mail
	// Do: <nil>
}
