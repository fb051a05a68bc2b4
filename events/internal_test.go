package events

import (
	"strings"
	"testing"

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
