package entdriver_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
)

// exampleTB lets the examples, which have no *testing.T, ask pgtest for the package's
// database.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()           {}
func (exampleTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// exampleDatabaseURL stands for the application's configuration (DATABASE_URL).
func exampleDatabaseURL() string { return pgtest.ConnString(exampleTB{}) }

// Build the ent client once at start-up on the transaction manager's driver; then
// every ent call made with a ctx that carries a transaction joins it.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer pool.Close()

	// Create or upgrade the application's tables (here the examples' bank domain) on
	// the database/sql view of the same pool; ent's migration engine needs database/sql.
	if err := bank.MigratePool(ctx, pool); err != nil {
		fmt.Println("migrate:", err)
		return
	}

	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := ent.NewClient(ent.Driver(entdriver.New(tm)))

	// Outside a transaction, each statement runs on the pool.
	ada, err := client.Account.Create().SetOwner("ada").SetBalance(100).Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	bob, err := client.Account.Create().SetOwner("bob").Save(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}

	transfer := func(ctx context.Context, amount int64) error {
		return tm.Do(ctx, func(ctx context.Context) error {
			if _, err := client.Account.UpdateOneID(ada.ID).AddBalance(-amount).Save(ctx); err != nil {
				return fmt.Errorf("debit ada: %w", err)
			}
			if _, err := client.Account.UpdateOneID(bob.ID).AddBalance(amount).Save(ctx); err != nil {
				return fmt.Errorf("credit bob: %w", err)
			}
			_, err := client.Transfer.Create().SetFromID(ada.ID).SetToID(bob.ID).SetAmount(amount).Save(ctx)
			return err
		})
	}
	balances := func() {
		a, _ := client.Account.Get(ctx, ada.ID)
		b, _ := client.Account.Get(ctx, bob.ID)
		fmt.Printf("ada %d, bob %d\n", a.Balance, b.Balance)
	}

	if err := transfer(ctx, 30); err != nil {
		fmt.Println(err)
	}
	balances()
	// Overdrawing violates the accounts' CHECK constraint: the whole Do rolls back.
	if err := transfer(ctx, 500); err != nil {
		fmt.Println("transfer of 500 failed, nothing changed")
	}
	balances()
	// Output:
	// ada 70, bob 30
	// transfer of 500 failed, nothing changed
	// ada 70, bob 30
}

// Inside Do, an ent transaction (client.Tx, and the ones ent opens itself for UpdateOne
// or edges) is a Nested scope: a savepoint. Rolling it back keeps the rest of the
// transaction.
func ExampleDriver_Tx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer pool.Close()
	if err := bank.MigratePool(ctx, pool); err != nil {
		fmt.Println("migrate:", err)
		return
	}
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := ent.NewClient(ent.Driver(entdriver.New(tm)))

	var kept, dropped int64
	err = tm.Do(ctx, func(ctx context.Context) error {
		a, err := client.Account.Create().SetOwner("kept").Save(ctx)
		if err != nil {
			return err
		}
		kept = a.ID

		tx, err := client.Tx(ctx) // a savepoint in Do's transaction
		if err != nil {
			return err
		}
		b, err := tx.Account.Create().SetOwner("dropped").Save(ctx)
		if err != nil {
			return errors.Join(err, tx.Rollback())
		}
		dropped = b.ID
		return tx.Rollback() // back to the savepoint; Do goes on and commits
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, errKept := client.Account.Get(ctx, kept)
	_, errDropped := client.Account.Get(ctx, dropped)
	fmt.Println("kept exists:", errKept == nil)
	fmt.Println("dropped exists:", !ent.IsNotFound(errDropped))
	// Output:
	// kept exists: true
	// dropped exists: false
}
