package lru_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/uno-framework/uno/internal/lru"
)

func TestSetForgetsTheLeastRecentlyUsedKey(t *testing.T) {
	s := lru.New[string](3)
	assert.False(t, s.Add("a"))
	assert.False(t, s.Add("b"))
	assert.False(t, s.Add("c"))
	assert.True(t, s.Contains("a")) // a is now the most recently used; b the least
	assert.True(t, s.Add("d"))
	assert.False(t, s.Contains("b"), "b was used least recently")
	for _, k := range []string{"a", "c", "d"} {
		assert.True(t, s.Contains(k), k)
	}
	assert.Equal(t, 3, s.Len())
	assert.False(t, s.Add("d"), "adding a key that is there forgets nothing")
}

func TestSetStaysBoundedAndKeepsWorkingPastItsCapacity(t *testing.T) {
	s := lru.New[string](100)
	for i := range 10_000 {
		s.Add(strconv.Itoa(i))
	}
	assert.Equal(t, 100, s.Len())
	assert.True(t, s.Contains("9999"), "new keys are remembered after the set filled up")
	assert.False(t, s.Contains("0"))
}

func TestSetCapacityIsAtLeastOne(t *testing.T) {
	s := lru.New[int](0)
	s.Add(1)
	s.Add(2)
	assert.Equal(t, 1, s.Len())
	assert.True(t, s.Contains(2))
}

func TestSetIsSafeForConcurrentUse(t *testing.T) {
	s := lru.New[int](64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				s.Add(g*1000 + i)
				s.Contains(i)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 64, s.Len())
}
