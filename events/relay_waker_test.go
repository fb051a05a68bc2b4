package events

import (
	"testing"

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
