package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
)

func TestPartitionOfIsStableAndSpreadsKeys(t *testing.T) {
	id := uuid.New()
	assert.Equal(t, PartitionOf("acct-1", id), PartitionOf("acct-1", uuid.New()), "the key alone decides")
	assert.Equal(t, PartitionOf("", id), PartitionOf("", id))
	// FNV-1a of "a" is 0xe40c292c.
	assert.Equal(t, int16(0xe40c292c%Partitions), PartitionOf("a", id))
	hits := make(map[int16]int)
	for i := 0; i < 3200; i++ {
		p := PartitionOf("key-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+uuid.NewString(), id)
		assert.True(t, p >= 0 && p < Partitions)
		hits[p]++
	}
	assert.Len(t, hits, Partitions, "every partition gets keys")
}

func TestNotifyPayloadRoundTrip(t *testing.T) {
	var seen [Partitions]bool
	seen[3], seen[17], seen[Partitions-1] = true, true, true
	s := notifyPayload(&seen)
	assert.Equal(t, "3,17,31", s)
	var got []int
	assert.True(t, parseNotifyPayload(s, func(p int) { got = append(got, p) }))
	assert.Equal(t, []int{3, 17, 31}, got)
	for _, bad := range []string{"", "x", "1,,2", "-1", "32"} {
		assert.False(t, parseNotifyPayload(bad, func(int) {}), "%q", bad)
	}
}

func TestPlanPublishKeepsKeyOrder(t *testing.T) {
	envs := []envelope{
		{id: 1, events: []storedEvent{{topic: "a", key: "k1"}, {topic: "b", key: "k2"}}},
		{id: 2, events: []storedEvent{{topic: "a", key: "k1"}, {topic: "b", key: ""}}},
	}
	items := []item{{0, 0}, {0, 1}, {1, 0}, {1, 1}}
	// No key spans two topics: one call per topic.
	assert.Equal(t, []publishGroup{{"a", []item{{0, 0}, {1, 0}}}, {"b", []item{{0, 1}, {1, 1}}}}, planPublish(envs, items))
	// k1 under two topics: runs, in order.
	envs[1].events[0].topic = "b"
	assert.Equal(t, []publishGroup{{"a", []item{{0, 0}}}, {"b", []item{{0, 1}, {1, 0}, {1, 1}}}}, planPublish(envs, items))
}

func TestRetryDelayDoublesUpToTheCap(t *testing.T) {
	r := &Relay{cfg: RelayConfig{RetryBackoff: time.Second, MaxRetryBackoff: 5 * time.Second}}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, r.retryDelay(a))
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
}

func TestErrorTextIsStorable(t *testing.T) {
	s := errorText(errors.New("bad\x00byte \xff" + strings.Repeat("y", 5000)))
	assert.NotContains(t, s, "\x00")
	assert.True(t, len(s) <= 4000)
	assert.True(t, strings.HasPrefix(s, "bad?byte ?"))
}
