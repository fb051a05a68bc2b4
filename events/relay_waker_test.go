package events

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

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

func TestNotifiedMarksThePartitionsItNames(t *testing.T) {
	c := newLeaseCoordinator(nil, "r", 4*time.Second, 4, slog.New(slog.DiscardHandler))
	ownAll(c)
	n := &notifyWaker{leases: c}
	n.notified("3,6")
	assert.Equal(t, []int16{3}, c.take(3))
	assert.Equal(t, []int16{6}, c.take(2))
	assert.Empty(t, c.take(0))
	n.notified("not a list") // from another writer: every partition may have rows
	assert.Len(t, c.take(0), Partitions/4)
}
