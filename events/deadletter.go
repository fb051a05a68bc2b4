package events

import (
	"context"
	"fmt"

	"github.com/uno-framework/uno/txmanager"
)

// requeueSQL moves dead letters back into the outbox, in their original order, with
// their attempts reset, and wakes the relays.
const requeueSQL = `WITH moved AS (
	DELETE FROM uno_dead_letters WHERE id = ANY($1::int8[])
	RETURNING outbox_id, event_id, partition, topic, key, type, payload, metadata, occurred_at
), ins AS (
	INSERT INTO uno_outbox (event_id, partition, topic, key, type, payload, metadata, occurred_at)
	SELECT event_id, partition, topic, key, type, payload, metadata, occurred_at FROM moved ORDER BY outbox_id
	RETURNING partition
)
SELECT count(*), pg_notify('` + NotifyChannel + `', COALESCE(string_agg(DISTINCT partition::text, ','), '')) FROM ins`

// Requeue puts the dead letters with the given ids (uno_dead_letters.id) back into
// the outbox, to be published again from their first attempt, and returns how many it
// moved. Run it through a pool, or inside a transaction to combine it with other work.
// A requeued event goes after the events of its key written since; its ID is kept, so
// an [Inbox] still recognises it.
func Requeue(ctx context.Context, q txmanager.Querier, ids ...int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	var notified any
	if err := q.QueryRow(ctx, requeueSQL, ids).Scan(&n, &notified); err != nil {
		return 0, fmt.Errorf("events: requeue %d dead letter(s): %w", len(ids), err)
	}
	return n, nil
}
