package events

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlanPublishKeepsKeyOrder(t *testing.T) {
	rows := []outboxRow{
		{id: 1, events: []storedEvent{{topic: "a", key: "k1"}, {topic: "b", key: "k2"}}},
		{id: 2, events: []storedEvent{{topic: "a", key: "k1"}, {topic: "b", key: ""}}},
	}
	evs := []rowEvent{{0, 0}, {0, 1}, {1, 0}, {1, 1}}
	// No key spans two topics: one call per topic.
	assert.Equal(t, []publishGroup{{"a", []rowEvent{{0, 0}, {1, 0}}}, {"b", []rowEvent{{0, 1}, {1, 1}}}}, planPublish(rows, evs))
	// k1 under two topics: runs, in order.
	rows[1].events[0].topic = "b"
	assert.Equal(t, []publishGroup{{"a", []rowEvent{{0, 0}}}, {"b", []rowEvent{{0, 1}, {1, 0}, {1, 1}}}}, planPublish(rows, evs))
}
