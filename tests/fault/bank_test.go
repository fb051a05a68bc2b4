package fault_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/pool"
	"github.com/uno-framework/uno/txmanager"
)

// TestBankKeepsItsTotalUnderSerializableContention moves money between 16 accounts from
// 32 workers in SERIALIZABLE transactions for a bounded time (longer with -fault.long),
// while auditors read the total: it never changes, whatever was retried or failed.
func TestBankKeepsItsTotalUnderSerializableContention(t *testing.T) {
	p, tm := newPooled(t, 16, pool.DefaultConfig())
	ctx := testCtx(t)
	const accounts, initial = 16, 1000
	_, err := p.Pgx().Exec(ctx, `create table bank_accounts (id int primary key, balance int not null check (balance >= 0))`)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = p.Pgx().Exec(context.Background(), "drop table bank_accounts") })
	_, err = p.Pgx().Exec(ctx, `insert into bank_accounts select g, $1 from generate_series(1, $2) g`, initial, accounts)
	require.NoError(t, err)

	duration := 2 * time.Second
	if *long {
		duration = 30 * time.Second
	}
	serializable := []txmanager.Option{
		txmanager.WithIsolation(pgx.Serializable),
		txmanager.WithRetry(txmanager.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 20 * time.Millisecond}),
	}
	var transfers, retryErrors, badAudits, audits atomic.Int64
	var otherErrs sync.Map
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(stop) {
				if w%8 == 0 { // four auditors
					var total int
					err := tm.Do(ctx, func(ctx context.Context) error {
						return tm.Querier(ctx).QueryRow(ctx, "select sum(balance) from bank_accounts").Scan(&total)
					}, append(serializable, txmanager.ReadOnly())...)
					if err == nil {
						audits.Add(1)
						if total != accounts*initial {
							badAudits.Add(1)
						}
					}
					continue
				}
				from, to := 1+rng.IntN(accounts), 1+rng.IntN(accounts)
				if from == to {
					continue
				}
				amount := 1 + rng.IntN(50)
				err := tm.Do(ctx, func(ctx context.Context) error {
					q := tm.Querier(ctx)
					var balance int
					if err := q.QueryRow(ctx, "select balance from bank_accounts where id = $1", from).Scan(&balance); err != nil {
						return err
					}
					if balance < amount {
						return nil
					}
					if _, err := q.Exec(ctx, "update bank_accounts set balance = balance - $2 where id = $1", from, amount); err != nil {
						return err
					}
					_, err := q.Exec(ctx, "update bank_accounts set balance = balance + $2 where id = $1", to, amount)
					return err
				}, serializable...)
				var re *txmanager.RetryError
				switch {
				case err == nil:
					transfers.Add(1)
				case errors.As(err, &re):
					retryErrors.Add(1)
				default:
					otherErrs.Store(err.Error(), true)
				}
			}
		})
	}
	wg.Wait()
	otherErrs.Range(func(k, _ any) bool { t.Errorf("unexpected error: %v", k); return true })
	var total int
	require.NoError(t, p.Pgx().QueryRow(ctx, "select sum(balance) from bank_accounts").Scan(&total))
	assert.Equal(t, accounts*initial, total, "money was created or destroyed")
	assert.Zero(t, badAudits.Load(), "an auditor saw a wrong total")
	assert.Positive(t, transfers.Load())
	t.Logf("%s: %d transfers committed, %d gave up after 3 attempts (RetryError), %d audits; pool resets %d",
		duration, transfers.Load(), retryErrors.Load(), audits.Load(), p.Stats().Resets)
}
