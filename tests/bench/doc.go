// Package bench holds uno's benchmarks, each run beside its baselines in the same
// process, on the same PostgreSQL database, with the same statements, pool settings
// and context, so that ratios rather than absolute times are compared.
//
// The package has no exported API: the benchmarks are in its _test.go files. It is a
// module of its own (github.com/uno-framework/uno/tests/bench, on the library through a
// replace directive), so that the peers it measures uno against stay out of the
// library's go.mod; run its commands from tests/bench. Without -bench, `go test .` (as
// CI runs it) only runs TestWiring, which runs every benchmarked implementation once and
// checks the rows it committed and the events it delivered, in a couple of seconds.
//
// # Cases
//
// Sub-benchmarks are named key=value (case=..., events=..., impl=...), so that
// benchstat's -col and -row put the implementations side by side.
//
//   - BenchmarkTx: a transaction with one INSERT (case=OneInsert); one INSERT
//     plus a nested savepoint scope with one INSERT (case=Nested); and OneInsert from 16
//     goroutines on a 20-connection pool (case=Parallel16). impl=pgx-BeginFunc is
//     hand-written pgx (pgx.BeginFunc, and tx.Begin for the savepoint);
//     impl=trm-pgxv5 is github.com/avito-tech/go-transaction-manager v2 with its pgxv5
//     driver (PropagationNested for the savepoint); impl=uno is txmanager.Manager.Do
//     (and Do with Nested()). impl=pgx-batch is a further reference: hand-written
//     pgx with the fewest round trips a transaction can take (BEGIN queued with the first
//     statement via Batch.BeginTx, SAVEPOINT with the scope's statement, no RELEASE).
//     After every run the committed rows are counted (b.N, or 2*b.N for Nested).
//   - BenchmarkEmit: the same one-INSERT transaction without events
//     (events=0) and with 10 events (events=10). impl=watermill-1publish and
//     impl=watermill-10publish are Watermill's outbox: the watermill-sql v4 publisher on
//     the pgx transaction (sql.TxFromPgx), wrapped by components/forwarder's publisher,
//     with the 10 messages in one Publish or in 10; impl=uno-1emit and impl=uno-10emit
//     are uow.Manager.Do with UnitOfWork.Emit of the 10 events (10 keys) in one call or
//     in 10; impl=uno-1emit-1key emits them in one call under one key (one aggregate, so
//     one outbox row). With
//     events=0 every Watermill variant is plain pgx.BeginFunc and every uno variant the
//     same uow Do without Emit. Domain rows and outbox events (for uno: events in its
//     envelopes, events.ReadLag) are counted after every run.
//   - BenchmarkRelay: drains a backlog of 20,000 committed events (200
//     transactions of 100) to a router handler on an in-process GoChannel and reports
//     events/s; the events are spread over 200 keys (keys=200), over 4 hot keys
//     (keys=4, where reordering shows) or all under one hot key (keys=1). It also
//     reports what the whole process allocated per relayed event (B/event,
//     allocs/event: relay, transport, router and handler). impl=watermill-default is components/forwarder
//     over a watermill-sql subscriber with its defaults (batch 100, 1 s poll) and a
//     default GoChannel; impl=watermill-batch1000-poll10ms the same with
//     SubscribeBatchSize 1000 and PollInterval 10 ms; impl=uno is events.Relay with its
//     defaults publishing to events.NewGoChannel.
//   - BenchmarkLatency: 500 one-INSERT transactions per second, one event each,
//     for 6 s, with the relay and the handler running; reports the time from Commit
//     returning to the handler receiving the event (p50-ns, p99-ns, max-ns; benchstat
//     shows them in seconds with a fitting prefix).
//     impl=watermill-poll1s (forwarder defaults), impl=watermill-poll10ms, impl=uno.
//   - BenchmarkStartLatency: the same measure over the first 3 s after the relay
//     started (uno waits on Relay.Running; Watermill's forwarder has no readiness
//     signal), at 200 transactions per second on one hot key.
//   - BenchmarkCancel: one-INSERT Dos from 16 goroutines on a pool built by package
//     pool, with 0% and 1% of them cancelled mid-statement (cancelled=0%, 1%; pgx
//     closes a cancelled statement's connection); reports Do/s, new-conns and resets
//     (which must stay 0: a cancellation is no outage).
//   - BenchmarkScaleOut: the same 20,000-event backlog (200 keys) drained to a real
//     broker (broker=nats-jetstream, broker=rabbitmq) by 1, 2 or 4 relay processes
//     (relays=...), each this test binary started again with its own connections and
//     publisher; reports events/s until the broker has acknowledged every event.
//     impl=uno is events.Relay with its defaults; impl=watermill-forwarder is
//     components/forwarder over a watermill-sql subscriber (batch 1000, 10 ms poll), one
//     per process, in one consumer group. Afterwards one subscriber reads the broker's
//     messages back (untimed) to count reordering, duplicates and losses. A broker that
//     does not answer skips its cases.
//
// BenchmarkRelay, BenchmarkScaleOut and BenchmarkLatency also report, for the same wiring, the events that
// reached the handler after a later event of their key (ooo-events), duplicates
// (dup-events) and events never delivered (lost-events; the benchmark fails if any).
//
// # Reproducing the tables
//
// From tests/bench; benchstat is run from outside the module so that it does not enter
// go.mod. `go test -count 5` runs the five samples of one sub-benchmark back to back; on
// a noisy machine a loop of -count 1 runs interleaves the implementations in time
// instead, which is what the published tables use:
//
//	go test . -run '^$' -bench 'BenchmarkTx' -count 5 -benchtime 2s | tee /tmp/tx.txt
//	for i in 1 2 3 4 5; do go test . -run '^$' -bench 'BenchmarkTx' -count 1 -benchtime 2s; done | tee /tmp/tx.txt
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /impl /tmp/tx.txt)
//
//	for i in 1 2 3 4 5; do go test . -run '^$' -bench 'BenchmarkEmit' -count 1 -benchtime 2s; done | tee /tmp/emit.txt
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /events -row /impl /tmp/emit.txt)
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /impl -row /events /tmp/emit.txt)
//
//	for i in 1 2 3 4 5; do go test . -run '^$' -bench 'BenchmarkRelay$' -count 1 -benchtime 1x; done | tee /tmp/relay.txt
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /impl /tmp/relay.txt)
//
//	for i in 1 2 3; do go test . -run '^$' -bench 'BenchmarkScaleOut' -count 1 -benchtime 1x -timeout 1h; done | tee /tmp/scale.txt
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /impl -row /broker,/relays /tmp/scale.txt)
//
//	for i in 1 2 3 4 5; do go test . -run '^$' -bench 'BenchmarkLatency' -count 1 -benchtime 1x; done | tee /tmp/latency.txt
//	(cd /tmp && go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /impl /tmp/latency.txt)
//
// BenchmarkRelay, BenchmarkScaleOut and BenchmarkLatency must be run with -benchtime 1x:
// one iteration is a whole drain (the backlog is refilled, untimed, before each) or a
// whole 6 s load.
//
// Every case runs on a cancellable context, as a request handler's is (pgx and the
// managers watch it). The transactions commit with PostgreSQL's defaults (synchronous_commit on, normal
// logged tables): the commit's WAL flush is part of what an application pays, and it
// dominates a one-statement transaction on this kind of machine. Every table is emptied
// (TRUNCATE) before each sub-benchmark run so that none grows without bound.
package bench
