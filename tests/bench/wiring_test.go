package bench

import (
	"testing"
	"time"
)

// TestWiring runs every benchmarked implementation once, so that `go test ./tests/bench`
// (CI, without -bench) catches a case that no longer commits or delivers what it should.
func TestWiring(t *testing.T) {
	pool := benchPool(t)
	execOrFatal(t, pool, txCreateSQL)
	ctx := t.Context()

	t.Run("Tx", func(t *testing.T) {
		for _, impl := range txImpls(t, pool) {
			execOrFatal(t, pool, "TRUNCATE "+txTable)
			if err := impl.oneInsert(ctx); err != nil {
				t.Fatalf("%s one insert: %v", impl.name, err)
			}
			if err := impl.nested(ctx); err != nil {
				t.Fatalf("%s nested: %v", impl.name, err)
			}
			if got := countRows(t, pool, txTable); got != 3 {
				t.Errorf("%s: %d rows committed, want 3", impl.name, got)
			}
		}
	})

	t.Run("Emit", func(t *testing.T) {
		for _, impl := range emitImpls(t, pool) {
			impl.reset(t)
			evs := []eventRef{{key: "k0", seq: 0}, {key: "k1", seq: 0}}
			if err := impl.commit(ctx, evs); err != nil {
				t.Fatalf("%s: %v", impl.name, err)
			}
			if got := impl.outboxRows(t); got != len(evs) {
				t.Errorf("%s: %d events in the outbox, want %d", impl.name, got, len(evs))
			}
		}
	})

	t.Run("Relay", func(t *testing.T) {
		const n = 2 * relayEventsPerTx
		for _, impl := range relayImpls(t, pool) {
			impl.reset(t)
			fillBacklog(t, ctx, impl, n, 4)
			tr := newTracker(n)
			stop := impl.start(t, tr)
			select {
			case <-tr.done:
			case <-time.After(30 * time.Second):
			}
			stop()
			if got := tr.received(); got != n {
				t.Errorf("%s: %d of %d events delivered", impl.name, got, n)
			}
		}
	})
}
