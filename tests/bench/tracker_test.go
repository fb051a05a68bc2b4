package bench

import (
	"slices"
	"strconv"
	"sync"
	"time"
)

// Every event the benchmarks emit has a key (its aggregate) and a sequence number within
// that key, carried in message metadata under these names by both uno and the Watermill
// baseline. (key, seq) identifies an event across implementations.
const (
	metaKey = "bench_key"
	metaSeq = "bench_seq"
)

// eventRef identifies one benchmark event.
type eventRef struct {
	key string
	seq int64
}

// keyName returns the key of aggregate i.
func keyName(i int) string { return "k" + strconv.Itoa(i) }

// tracker records what a handler receives: every distinct event, the ones that came
// after a later event of the same key (out of order), duplicates, and when each arrived.
type tracker struct {
	mu         sync.Mutex
	want       int
	seen       map[eventRef]time.Time
	maxSeq     map[string]int64
	outOfOrder int
	duplicates int
	bad        int // messages without a parsable key/seq
	done       chan struct{}
}

// newTracker returns a tracker whose done channel closes once want distinct events arrived.
func newTracker(want int) *tracker {
	return &tracker{
		want:   want,
		seen:   make(map[eventRef]time.Time, want),
		maxSeq: make(map[string]int64),
		done:   make(chan struct{}),
	}
}

// handle records one delivery of the event with metadata key and seq.
func (t *tracker) handle(key, seq string) {
	now := time.Now()
	s, err := strconv.ParseInt(seq, 10, 64)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil || key == "" {
		t.bad++
		return
	}
	ref := eventRef{key, s}
	if _, dup := t.seen[ref]; dup {
		t.duplicates++
		return
	}
	t.seen[ref] = now
	if m, ok := t.maxSeq[key]; ok && s < m {
		t.outOfOrder++
	} else {
		t.maxSeq[key] = s
	}
	if len(t.seen) == t.want {
		close(t.done)
	}
}

// received returns how many distinct events arrived.
func (t *tracker) received() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

// arrival returns when ref arrived.
func (t *tracker) arrival(ref eventRef) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.seen[ref]
	return at, ok
}

// counts returns the out-of-order, duplicate and malformed counts.
func (t *tracker) counts() (outOfOrder, duplicates, bad int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.outOfOrder, t.duplicates, t.bad
}

// percentile returns the p-th percentile (0..100) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return sorted[i]
}

// sortDurations sorts d in place and returns it.
func sortDurations(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}
