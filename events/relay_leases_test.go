package events

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/schema"
	"github.com/uno-framework/uno/tests/pgtest"
)

// ownAll makes c hold every partition with a fresh lease, as after a renewal.
func ownAll(c *leaseCoordinator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.parts {
		c.parts[p].owned, c.parts[p].validUntil = true, time.Now().Add(c.lease)
	}
}

func TestLeaseCoordinatorHandsEachWorkerItsDuePartitionsOnce(t *testing.T) {
	c := newLeaseCoordinator(nil, "r", 4*time.Second, 4, slog.New(slog.DiscardHandler))
	ownAll(c)
	c.markDirty(1, 5, 2)
	assert.Equal(t, []int16{1, 5}, c.take(1), "worker 1 serves partitions p mod 4 == 1")
	assert.Empty(t, c.take(1), "taken partitions are busy and clean until marked again")
	assert.Equal(t, []int16{2}, c.take(2))
	select {
	case <-c.signals[1]:
	default:
		t.Error("markDirty wakes the partitions' workers")
	}

	// A partition whose lease has less than half left is not read; rows of one with
	// less than a quarter left are not published, and it is marked for a new read.
	c.mu.Lock()
	c.parts[9].validUntil = time.Now().Add(time.Second + 500*time.Millisecond)
	c.parts[13].validUntil = time.Now().Add(500 * time.Millisecond)
	c.mu.Unlock()
	c.markDirty(9, 13)
	assert.Empty(t, c.take(1))
	rows := c.stillLeased([]outboxRow{{partition: 9}, {partition: 13}, {partition: 5}})
	require.Len(t, rows, 2)
	assert.Equal(t, []int16{9, 5}, []int16{rows[0].partition, rows[1].partition})

	c.unbusy([]int16{1, 5}, []int16{5})
	c.mu.Lock()
	assert.False(t, c.parts[1].busy)
	assert.True(t, c.parts[5].busy, "kept busy")
	c.mu.Unlock()
}

func TestTwoLeaseCoordinatorsShareThePartitions(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.PoolConfig(t))
	require.NoError(t, schema.MigratePool(ctx, pool))
	_, err := pool.Exec(ctx, `TRUNCATE uno_outbox_leases, uno_outbox_relays`)
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	a := newLeaseCoordinator(pool, "coordinator-a", 10*time.Second, 4, log)
	b := newLeaseCoordinator(pool, "coordinator-b", 10*time.Second, 4, log)
	require.NoError(t, a.createLeases(ctx))

	require.NoError(t, a.renew(ctx))
	held, relays := a.held()
	assert.Equal(t, Partitions, held, "alone, a relay holds every partition")
	assert.Equal(t, 1, relays)

	require.NoError(t, b.renew(ctx))
	held, relays = b.held()
	assert.Zero(t, held, "the partitions are leased to a")
	assert.Equal(t, 2, relays)

	require.NoError(t, a.renew(ctx)) // gives back what exceeds its share
	require.NoError(t, b.renew(ctx)) // takes it
	heldA, _ := a.held()
	heldB, _ := b.held()
	assert.Equal(t, Partitions/2, heldA)
	assert.Equal(t, Partitions/2, heldB)

	// A stopping relay claims nothing, and gives back its idle partitions.
	b.stopping.Store(true)
	b.releaseAll(ctx)
	require.NoError(t, a.renew(ctx))
	heldA, relays = a.held()
	assert.Equal(t, Partitions, heldA)
	assert.Equal(t, 1, relays)
	a.releaseAll(ctx)
}
