package lru

import (
	"container/list"
	"sync"
)

// Set holds at most a fixed number of keys; adding one to a full Set forgets the key
// used least recently (added or found by Contains). It is safe for concurrent use.
type Set[K comparable] struct {
	mu    sync.Mutex
	cap   int
	order *list.List // front: most recently used
	items map[K]*list.Element
}

// New returns a Set of at most capacity keys (at least 1).
func New[K comparable](capacity int) *Set[K] {
	capacity = max(capacity, 1)
	return &Set[K]{cap: capacity, order: list.New(), items: make(map[K]*list.Element, capacity)}
}

// Contains reports whether k is in the set, and marks it used.
func (s *Set[K]) Contains(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[k]
	if ok {
		s.order.MoveToFront(e)
	}
	return ok
}

// Add adds k, or marks it used when it is there. It reports whether another key was
// forgotten to make room.
func (s *Set[K]) Add(k K) (evicted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		s.order.MoveToFront(e)
		return false
	}
	if s.order.Len() >= s.cap {
		oldest := s.order.Back()
		s.order.Remove(oldest)
		delete(s.items, oldest.Value.(K))
		evicted = true
	}
	s.items[k] = s.order.PushFront(k)
	return evicted
}

// Len returns the number of keys held.
func (s *Set[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}
