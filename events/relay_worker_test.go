package events

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetryDelayDoublesUpToTheCap(t *testing.T) {
	w := &worker{cfg: &RelayConfig{RetryBackoff: time.Second, MaxRetryBackoff: 5 * time.Second}}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, w.retryDelay(a))
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
}

func TestErrorTextIsStorable(t *testing.T) {
	s := errorText(errors.New("bad\x00byte \xff" + strings.Repeat("y", 5000)))
	assert.NotContains(t, s, "\x00")
	assert.True(t, len(s) <= 4000)
	assert.True(t, strings.HasPrefix(s, "bad?byte ?"))
}

// callLog is a publisher that fails the message of key "bad" the way GoChannel does
// (a DeliveryError naming it) and records every call.
type callLog struct{ calls [][]string }

func (p *callLog) Publish(topic string, msgs ...*message.Message) error {
	var keys []string
	for _, m := range msgs {
		keys = append(keys, m.Metadata.Get(MetadataKey))
	}
	p.calls = append(p.calls, keys)
	for i, m := range msgs {
		if m.Metadata.Get(MetadataKey) == "bad" {
			return &DeliveryError{Topic: topic, MessageUUID: m.UUID, Delivered: i, Err: ErrNacked}
		}
	}
	return nil
}

func (p *callLog) Close() error { return nil }

func TestWorkerTrustsADeliveryErrorAndRepublishesNothingDelivered(t *testing.T) {
	pub := &callLog{}
	w := &worker{pub: pub, cfg: &RelayConfig{MaxAttempts: 5, RetryBackoff: time.Second, MaxRetryBackoff: time.Second},
		log: slog.New(slog.DiscardHandler)}
	ev := func(key string) storedEvent { return storedEvent{id: uuid.New(), topic: "t", key: key} }
	rows := []outboxRow{{id: 1, partition: 3, events: []storedEvent{ev("a"), ev("bad"), ev("c"), ev("bad")}}}
	var acks ackBatch
	skipped, ok := w.publish(context.Background(), rows, &acks)
	require.True(t, ok)
	assert.Equal(t, [][]string{{"a", "bad", "c", "bad"}, {"c"}}, pub.calls,
		"a is not published again; c is, alone; the second bad waits behind the first")
	assert.Equal(t, []int16{3}, skipped, "the held event's partition is read again")
	assert.Equal(t, 2, acks.published)
	assert.Equal(t, 1, acks.failures)
	require.Len(t, acks.updIDs, 1, "the envelope is kept with its failed and held events")
	assert.True(t, acks.updRewrite[0], "the events left are not a prefix")
	assert.Equal(t, int32(2), acks.updCount[0])
	assert.Equal(t, int64(1000), acks.updDelays[0], "back-off after the failure")
}
