package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/events"
)

// A relay process is this test binary started again with relayProcessEnv set to
// "impl,broker,id" and relayProcessURLEnv to the database's connection string: TestMain
// then runs a relay instead of the tests. It connects, says "ready" on stdout, starts
// relaying when a line arrives on stdin and stops when stdin closes.
const (
	relayProcessEnv    = "UNO_BENCH_RELAY_PROCESS"
	relayProcessURLEnv = "UNO_BENCH_RELAY_PROCESS_URL"
)

// The relay implementations a relay process runs.
const (
	scaleUno       = "uno"
	scaleWatermill = "watermill-forwarder"
)

// scaleForwarderTopic is the watermill-sql topic Watermill's forwarder reads envelopes
// from in BenchmarkScaleOut.
const scaleForwarderTopic = "bench_scale_forwarder"

// Watermill's forwarder reads with batches of 1000 and a 10 ms poll in BenchmarkScaleOut,
// its fastest configuration in BenchmarkRelay.
const (
	scaleWMBatch = 1000
	scaleWMPoll  = 10 * time.Millisecond
)

// wmScaleOutbox is the watermill-sql side of Watermill's forwarder in a relay process;
// the benchmark creates its tables (newWMOutbox).
func wmScaleOutbox(pool *pgxpool.Pool) *wmOutbox {
	return &wmOutbox{
		pool:     pool,
		fwdTopic: scaleForwarderTopic,
		schema:   wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: scaleWMBatch},
		poll:     scaleWMPoll,
	}
}

// runRelayProcessIfAsked runs a relay process and exits when the environment asks for
// one; otherwise it returns.
func runRelayProcessIfAsked() {
	spec, ok := os.LookupEnv(relayProcessEnv)
	if !ok {
		return
	}
	if err := runRelayProcess(spec, os.Getenv(relayProcessURLEnv), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "relay process:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runRelayProcess is a relay process's life: spec is "impl,broker,id".
func runRelayProcess(spec, dbURL string, in io.Reader, out io.Writer) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return fmt.Errorf("%s=%q: want impl,broker,id", relayProcessEnv, spec)
	}
	impl, id := parts[0], parts[2]
	b, err := brokerNamed(parts[1])
	if err != nil {
		return err
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	pub, err := b.publisher()
	if err != nil {
		return fmt.Errorf("%s publisher: %w", b.name, err)
	}
	defer pub.Close()

	var run func(ctx context.Context) error
	switch impl {
	case scaleUno:
		relay, err := events.NewRelay(pool, pub, events.RelayConfig{ID: id, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		run = relay.Run
	case scaleWatermill:
		sub, err := wmScaleOutbox(pool).subscriber()
		if err != nil {
			return err
		}
		defer sub.Close()
		fwd, err := forwarder.NewForwarder(sub, pub, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: scaleForwarderTopic})
		if err != nil {
			return err
		}
		run = func(ctx context.Context) error {
			err := fwd.Run(ctx)
			if cerr := fwd.Close(); err == nil {
				err = cerr
			}
			return err
		}
	default:
		return fmt.Errorf("no relay implementation named %q", impl)
	}
	if err := pool.Ping(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")

	lines := bufio.NewScanner(in)
	if !lines.Scan() {
		return nil // stopped before it started
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	for lines.Scan() { // until stdin closes
	}
	cancel()
	return <-done
}

// relayProcess is a running relay process, seen from the benchmark.
type relayProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	exit  chan error
}

// startRelayProcess starts a relay process running impl towards b as relay id and
// waits until it is connected and ready.
func startRelayProcess(tb testing.TB, impl string, b broker, id, dbURL string) *relayProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), relayProcessEnv+"="+impl+","+b.name+","+id, relayProcessURLEnv+"="+dbURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start a relay process: %v", err)
	}
	p := &relayProcess{cmd: cmd, stdin: stdin, exit: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		ready <- lines.Scan() && lines.Text() == "ready"
		for lines.Scan() {
		}
		p.exit <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if !ok {
			tb.Fatalf("relay process %s did not say ready: %v", id, p.stop())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		tb.Fatalf("relay process %s did not say ready within a minute", id)
	}
	return p
}

// start tells the process to start relaying.
func (p *relayProcess) start() error {
	_, err := io.WriteString(p.stdin, "go\n")
	return err
}

// stop closes the process's stdin, which stops its relay, and waits for it to exit; it
// kills it after 30 s.
func (p *relayProcess) stop() error {
	_ = p.stdin.Close()
	select {
	case err := <-p.exit:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return errors.Join(errors.New("did not stop within 30s of its stdin closing; killed"), <-p.exit)
	}
}
