package fault_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/internal/faultproxy"
	"github.com/uno-framework/uno/txmanager"
)

// kindOf maps a roll of 0..99 to a soak kind (see TestChaoticSoak): 0 commit, 1 fail,
// 2 panic, 3 cancel mid-statement, 4 slower statement, 5 time out, 6 failed Nested
// scope, 7 RequiresNew, 8 connection cut.
var kindOf = func() (k [100]int) {
	weights := [9]int{30, 12, 12, 3, 12, 3, 13, 12, 3}
	i := 0
	for kind, w := range weights {
		for range w {
			k[i] = kind
			i++
		}
	}
	return k
}()

// errChaos is what a Do's fn returns to roll back on purpose.
var errChaos = errors.New("chaos: rolled back on purpose")

// TestChaoticSoak runs a bounded number of Dos (more with -fault.long) from 16
// goroutines, each doing one of: commit, fail, panic, cancel its context mid-statement,
// time out, fail a Nested scope, open a RequiresNew scope, or meet a connection the proxy
// cuts. Every Do that returned nil committed its rows, every one that failed left none,
// the pool is never reset, and no connection (nor goroutine: pgtest.Main checks) leaks.
func TestChaoticSoak(t *testing.T) {
	p := newProxied(t, 8, txmanager.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond})
	ctx := testCtx(t)
	tbl := table(t, p.pool)
	total := 500
	if *long {
		total = 50000
	}
	type result struct {
		v, nested, inner string // rows the Do wrote: outer, failed Nested, RequiresNew
		err              error
	}
	results := make([]result, total)
	var next atomic.Int64
	var kinds, kindNanos [9]atomic.Int64
	insert := func(ctx context.Context, v string) error {
		_, err := p.tm.Querier(ctx).Exec(ctx, "insert into "+tbl+" (v) values ($1)", v)
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				r := &results[i]
				r.v = fmt.Sprintf("s%d", i)
				// Kinds 3, 5 and 8 destroy a connection, which costs a new one: they are
				// rarer, so that the soak stays fast on a loaded machine.
				kind := kindOf[rng.IntN(len(kindOf))]
				kinds[kind].Add(1)
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				var opts []txmanager.Option
				if kind == 5 {
					opts = append(opts, txmanager.WithTimeout(time.Duration(1+rng.IntN(3))*time.Millisecond))
				}
				if kind == 8 {
					p.proxy.Arm(faultproxy.Point{Match: faultproxy.ServerCompletes("INSERT")})
				}
				began := time.Now()
				r.err = func() (err error) {
					defer func() {
						if rec := recover(); rec != nil {
							err = fmt.Errorf("panicked: %v", rec)
						}
					}()
					return p.tm.Do(dctx, func(ctx context.Context) error {
						if err := insert(ctx, r.v); err != nil {
							return err
						}
						switch kind {
						case 1:
							return errChaos
						case 2:
							panic("chaos")
						case 3: // the caller gives up mid-statement
							sctx, cancel := context.WithCancel(ctx)
							time.AfterFunc(time.Duration(rng.IntN(3))*time.Millisecond, cancel)
							_, err := p.tm.Querier(sctx).Exec(sctx, "select pg_sleep(0.05)")
							cancel()
							return err
						case 4, 5:
							_, err := p.tm.Querier(ctx).Exec(ctx, "select pg_sleep(0.005)")
							return err
						case 6:
							r.nested = r.v + "-nested"
							_ = p.tm.Do(ctx, func(ctx context.Context) error {
								if err := insert(ctx, r.nested); err != nil {
									return err
								}
								return errChaos
							}, txmanager.Nested())
						case 7:
							r.inner = r.v + "-new"
							return p.tm.Do(ctx, func(ctx context.Context) error { return insert(ctx, r.inner) }, txmanager.RequiresNew())
						}
						return nil
					}, opts...)
				}()
				kindNanos[kind].Add(int64(time.Since(began)))
				cancel()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	p.proxy.Disarm()

	rows := map[string]int{}
	rs, err := p.pool.Query(ctx, "select v from "+tbl)
	require.NoError(t, err)
	for rs.Next() {
		var v string
		require.NoError(t, rs.Scan(&v))
		rows[v]++
	}
	require.NoError(t, rs.Err())
	var committed, failed, unknown int
	for _, r := range results {
		switch {
		case r.err == nil:
			committed++
			assert.Equal(t, 1, rows[r.v], "Do returned nil for %s: its row must be there once", r.v)
			if r.inner != "" {
				assert.Equal(t, 1, rows[r.inner], "RequiresNew row of %s", r.v)
			}
		case errors.Is(r.err, txmanager.ErrCommitOutcomeUnknown):
			unknown++
			assert.LessOrEqual(t, rows[r.v], 1)
		default:
			failed++
			assert.Zero(t, rows[r.v], "Do failed for %s (%v): its row must not be there", r.v, r.err)
		}
		if r.nested != "" {
			assert.Zero(t, rows[r.nested], "the failed Nested scope's row of %s", r.v)
		}
	}
	st := p.pooled.Stats()
	assert.Zero(t, st.Resets, "cancellations and cut connections never reset the pool")
	var perKind []string
	for i := range kinds {
		perKind = append(perKind, fmt.Sprintf("%d:%d×%s", i, kinds[i].Load(),
			(time.Duration(kindNanos[i].Load())/time.Duration(max(kinds[i].Load(), 1))).Round(10*time.Microsecond)))
	}
	t.Logf("%d Dos in %s (%.0f/s): %d committed, %d failed, %d unknown; per kind %v; connections cut %d, opened %d, broken discarded %d, resets %d",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), committed, failed, unknown, perKind,
		p.proxy.Cuts(), st.NewConns, st.BrokenConnsDiscarded, st.Resets)
}
