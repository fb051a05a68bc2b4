package events

import (
	"context"
	"fmt"
	"time"

	"github.com/uno-framework/uno/txmanager"
)

// The operator reads: what waits in the outbox, for tests, tools and operators (a
// CLI can call them with a pool). The relay does not need them.

// Lag is the state of the outbox.
type Lag struct {
	// Pending is the number of events not yet delivered (retrying ones included).
	Pending int64
	// Retrying is the number of pending events in envelopes (outbox rows) that failed
	// at least once.
	Retrying int64
	// Oldest is the age of the oldest pending event (0 when none), by the database
	// clock: since its transaction started.
	Oldest time.Duration
	// DeadLetters is the number of events in uno_dead_letters.
	DeadLetters int64
}

// ReadLag reads the state of the outbox through q (a pool, or a transaction).
func ReadLag(ctx context.Context, q txmanager.Querier) (Lag, error) {
	var l Lag
	var oldestMicros int64
	err := q.QueryRow(ctx, lagSQL).Scan(&l.Pending, &l.Retrying, &oldestMicros, &l.DeadLetters)
	if err != nil {
		if isUndefinedTable(err) {
			return Lag{}, errNotMigrated(err)
		}
		return Lag{}, fmt.Errorf("events: read the outbox lag: %w", err)
	}
	l.Oldest = time.Duration(max(oldestMicros, 0)) * time.Microsecond
	return l, nil
}

// PendingEvent is an event waiting in the outbox, as [ReadPending] returns it.
type PendingEvent struct {
	// Event is the event; its Payload is the stored []byte.
	Event
	// OutboxID and Partition identify the uno_outbox row (envelope) holding it.
	OutboxID  int64
	Partition int16
	// Attempts is the number of failed publish attempts of its envelope.
	Attempts int32
}

// ReadPending returns the events of the outbox not yet delivered, in the order of
// their envelopes (uno_outbox.id) and, within one, of emission: at most limit of
// them, all when limit is 0 or less. It is meant for tests, tools and operators; the
// relay does not need it. q is a pool or a transaction.
func ReadPending(ctx context.Context, q txmanager.Querier, limit int) ([]PendingEvent, error) {
	rows, err := q.Query(ctx, pendingSQL)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, errNotMigrated(err)
		}
		return nil, fmt.Errorf("events: read the pending events: %w", err)
	}
	defer rows.Close()
	var out []PendingEvent
	var (
		id        int64
		partition int16
		raw       []byte
		delivered int32
		attempts  int32
	)
	for rows.Next() {
		if err := rows.Scan(&id, &partition, &raw, &delivered, &attempts); err != nil {
			return nil, fmt.Errorf("events: read the pending events: %w", err)
		}
		evs, err := DecodeEnvelope(raw)
		if err != nil {
			return nil, fmt.Errorf("events: outbox row (partition %d, id %d): %w", partition, id, err)
		}
		for _, ev := range evs[min(max(int(delivered), 0), len(evs)):] {
			out = append(out, PendingEvent{Event: ev, OutboxID: id, Partition: partition, Attempts: attempts})
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: read the pending events: %w", err)
	}
	return out, nil
}
