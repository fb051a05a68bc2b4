package bench

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// latencyRate is the steady rate of committed transactions, one event each.
	latencyRate = 500
	// latencyDuration is how long the load runs.
	latencyDuration = 6 * time.Second
	// latencyKeys is the number of keys the events are spread over.
	latencyKeys = 50
	// latencyWorkers is the number of goroutines committing, so that a slow commit does not
	// delay the next scheduled one.
	latencyWorkers = 8
	// latencyDrain bounds the wait for the last events after the load stopped.
	latencyDrain = 10 * time.Second
)

// loadSpec is the shape of a latency run: rate transactions per second, one event
// each, over keys keys, for duration, starting right after the relay started.
type loadSpec struct {
	rate     int
	duration time.Duration
	keys     int
}

// steadyLoad is BenchmarkLatency's load; startLoad is BenchmarkStartLatency's: the
// first 3 s after the relay started, on one hot key.
var (
	steadyLoad = loadSpec{rate: latencyRate, duration: latencyDuration, keys: latencyKeys}
	startLoad  = loadSpec{rate: 200, duration: 3 * time.Second, keys: 1}
)

// latencyImpls returns the implementations BenchmarkLatency compares.
func latencyImpls(tb testing.TB, pool *pgxpool.Pool) []eventImpl {
	tb.Helper()
	return []eventImpl{
		wmImpl(tb, pool, "watermill-poll1s", "bench_latency_default", 0, 0),
		wmImpl(tb, pool, "watermill-poll10ms", "bench_latency_fast", 0, 10*time.Millisecond),
		unoRelay(tb, pool),
	}
}

// BenchmarkLatency commits 500 one-INSERT transactions per second, each with one event,
// for 6 s with the relay and a GoChannel handler running, and reports the time from
// Commit returning to the handler receiving the event: p50-ns, p99-ns, max-ns (benchstat
// shows them as p50-sec etc.). It also
// reports out-of-order, duplicate and lost events for the same wiring.
//
// Run it with -benchtime 1x (one 6 s run per count); ns/op is not reported.
func BenchmarkLatency(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	for _, impl := range latencyImpls(b, pool) {
		b.Run("rate="+strconv.Itoa(latencyRate)+"/impl="+impl.name, func(b *testing.B) {
			benchmarkLoad(b, ctx, impl, steadyLoad)
		})
	}
}

// BenchmarkStartLatency is BenchmarkLatency over the first 3 s after the relay's
// start (uno's Run, waiting on Relay.Running; Watermill's forwarder has no readiness
// signal), at 200 transactions per second on one hot key: what a freshly started
// process sees.
func BenchmarkStartLatency(b *testing.B) {
	pool := benchPool(b)
	execOrFatal(b, pool, txCreateSQL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for _, impl := range latencyImpls(b, pool) {
		b.Run("rate="+strconv.Itoa(startLoad.rate)+"/keys=1/impl="+impl.name, func(b *testing.B) {
			benchmarkLoad(b, ctx, impl, startLoad)
		})
	}
}

// benchmarkLoad runs b.N loads of spec through impl and reports the commit-to-handler
// latencies and the delivery counts.
func benchmarkLoad(b *testing.B, ctx context.Context, impl eventImpl, spec loadSpec) {
	var lat []time.Duration
	var ooo, dup, lost, sent int
	var elapsed time.Duration
	for range b.N {
		impl.reset(b)
		r := runLoad(b, ctx, impl, spec)
		lat = append(lat, r.latencies...)
		ooo += r.outOfOrder
		dup += r.duplicates
		lost += r.lost
		sent += r.sent
		elapsed += r.loadTime
	}
	sortDurations(lat)
	// In ns, the unit benchstat knows: it shows p50-sec etc. with a fitting prefix.
	b.ReportMetric(float64(percentile(lat, 50)), "p50-ns")
	b.ReportMetric(float64(percentile(lat, 99)), "p99-ns")
	b.ReportMetric(float64(percentile(lat, 100)), "max-ns")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "tx/s")
	b.ReportMetric(float64(ooo)/float64(b.N), "ooo-events")
	b.ReportMetric(float64(dup)/float64(b.N), "dup-events")
	b.ReportMetric(float64(lost)/float64(b.N), "lost-events")
	b.ReportMetric(0, "ns/op")
	if lost != 0 {
		b.Errorf("%d of %d events not delivered", lost, sent)
	}
}

// loadResult is what one latency run measured.
type loadResult struct {
	latencies                    []time.Duration
	sent, outOfOrder, duplicates int
	lost                         int
	loadTime                     time.Duration
}

// runLoad starts impl's relay and handler, commits spec.rate transactions per second
// for spec.duration, waits for the events and stops the relay.
func runLoad(tb testing.TB, ctx context.Context, impl eventImpl, spec loadSpec) loadResult {
	tb.Helper()
	total := int(spec.duration.Seconds() * float64(spec.rate))
	tr := newTracker(total)
	stop := impl.start(tb, tr)
	defer stop()

	committed := make([]time.Time, total)
	jobs := make(chan int)
	errs := make(chan error, latencyWorkers)
	var wg sync.WaitGroup
	// No more committers than keys: the transactions of one key then commit one after
	// the other, in sequence order, so that ooo-events counts reordering by the relay
	// rather than by concurrent commits.
	for range min(latencyWorkers, spec.keys) {
		wg.Go(func() {
			evs := make([]eventRef, 1)
			for i := range jobs {
				evs[0] = eventRef{key: keyName(i % spec.keys), seq: int64(i / spec.keys)}
				if err := impl.commit(ctx, evs); err != nil {
					errs <- err
					return
				}
				committed[i] = time.Now()
			}
		})
	}
	interval := time.Second / time.Duration(spec.rate)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			tb.Fatalf("commit: %v", err)
		}
	}
	close(jobs)
	wg.Wait()
	loadTime := time.Since(start)
	select {
	case err := <-errs:
		tb.Fatalf("commit: %v", err)
	default:
	}

	select {
	case <-tr.done:
	case <-time.After(latencyDrain):
	}
	res := loadResult{sent: total, loadTime: loadTime}
	for i := range total {
		ref := eventRef{key: keyName(i % spec.keys), seq: int64(i / spec.keys)}
		at, ok := tr.arrival(ref)
		if !ok {
			res.lost++
			continue
		}
		// The handler may run before Commit has returned to the producer: count that as 0.
		res.latencies = append(res.latencies, max(at.Sub(committed[i]), 0))
	}
	var bad int
	res.outOfOrder, res.duplicates, bad = tr.counts()
	if bad != 0 {
		tb.Errorf("%d messages without key/seq metadata", bad)
	}
	return res
}
