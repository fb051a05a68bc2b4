package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/examples/bank"
	"github.com/uno-framework/uno/examples/bank/ent"
	"github.com/uno-framework/uno/txmanager"
	"github.com/uno-framework/uno/txmanager/entdriver"
	"github.com/uno-framework/uno/uow"
	"github.com/uno-framework/uno/uowtest"
)

// The use-cases of the quickstart, tested as an application tests its own with
// uowtest: each test in a transaction of its own, rolled back at its end.

// bankDB is the template of the test databases: uno's tables and the bank's.
var bankDB = &uowtest.Template{Name: "quickstart", Version: "bank-1", Migrate: bank.MigratePool}

// newBank builds the application on pool, as main does.
func newBank(t *testing.T, pool *pgxpool.Pool) *bank.Service {
	t.Helper()
	tm, err := txmanager.New(pool, txmanager.Config{})
	require.NoError(t, err)
	units, err := uow.NewManager(tm, nil)
	require.NoError(t, err)
	return &bank.Service{Client: ent.NewClient(ent.Driver(entdriver.New(tm))), TM: tm, Units: units}
}

// bankPool returns a pool on a fresh database of the test's own.
func bankPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), uowtest.NewDatabase(t, bankDB))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func TestTransferWithAFailedBonus(t *testing.T) {
	b := newBank(t, bankPool(t))
	ctx := uowtest.Begin(t, b.Units)

	alice, err := b.Open(ctx, "alice", 100)
	require.NoError(t, err)
	bob, err := b.Open(ctx, "bob", 50)
	require.NoError(t, err)
	// The bonus (1000) is more than alice has: its savepoint rolls back, the transfer stays.
	require.NoError(t, b.Transfer(ctx, alice, bob, 30, 1000))
	// 500 is more than bob has: the whole use-case rolls back, alone.
	require.Error(t, b.Transfer(ctx, bob, alice, 500, 0))

	uowtest.RequireEmitted(t, ctx, uowtest.Match{Topic: "transfer.completed", Key: strconv.FormatInt(alice, 10),
		Payload: bank.TransferCompleted{ID: 1, From: alice, To: bob, Amount: 30}})
	uowtest.RequireNotEmitted(t, ctx, uowtest.Match{Topic: "bonus.granted"})
	uowtest.RequireNotEmitted(t, ctx, uowtest.Match{Topic: "transfer.completed", Payload: bank.TransferCompleted{ID: 2, From: bob, To: alice, Amount: 500}})
	assert.Len(t, uowtest.Emitted(t, ctx), 3, "two accounts opened, one transfer")

	for id, want := range map[int64]int64{alice: 70, bob: 80} {
		a, err := b.Client.Account.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, a.Balance)
	}

	// The subscriber's handler gets the events as the relay would deliver them.
	s := &subscriber{changed: make(chan struct{}, 1)}
	n, err := uowtest.Deliver(t, ctx, events.Handler(s.handle))
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.True(t, strings.HasPrefix(s.received[2], "transfer.completed"), s.received)
}

// TestParallelTestsShareADatabaseWithoutSeeingEachOther: two tests open accounts at the
// same time on one database, each in its own transaction; neither sees the other's
// accounts or events.
func TestParallelTestsShareADatabaseWithoutSeeingEachOther(t *testing.T) {
	pool := bankPool(t)
	t.Run("group", func(t *testing.T) {
		for _, owner := range []string{"carol", "dave"} {
			t.Run(owner, func(t *testing.T) {
				t.Parallel()
				b := newBank(t, pool)
				ctx := uowtest.Begin(t, b.Units)
				for range 3 {
					_, err := b.Open(ctx, owner, 10)
					require.NoError(t, err)
				}
				accounts, err := b.Client.Account.Query().All(ctx)
				require.NoError(t, err)
				require.Len(t, accounts, 3)
				for _, a := range accounts {
					assert.Equal(t, owner, a.Owner)
				}
				for _, ev := range uowtest.Emitted(t, ctx) {
					assert.Equal(t, owner, uowtest.Payload[bank.AccountOpened](t, ctx, ev).Owner)
				}
			})
		}
	})
	n, err := newBank(t, pool).Client.Account.Query().Count(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n, "nothing was committed")
}
