package events_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/txmanager"
)

const crashEvents = 40 // committed by the helper process, in 4 transactions

// TestHelperProcess is not a test: run by TestCommittedEventsSurviveAProcessKill as a
// child process, it commits crashEvents events through tm.Do, says so on stdout and
// waits to be killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "crash" {
		t.Skip("helper process: run by TestCommittedEventsSurviveAProcessKill")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(helperURLEnv))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	outbox := events.NewOutbox(events.OutboxConfig{})
	for tx := 0; tx < 4; tx++ {
		err := tm.Do(ctx, func(ctx context.Context) error {
			for i := 0; i < crashEvents/4; i++ {
				n := tx*(crashEvents/4) + i
				if err := outbox.Emit(ctx, events.New("crash", n, events.WithKey(fmt.Sprint(n%3)))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
	}
	fmt.Println("committed")
	time.Sleep(time.Hour) // killed before
	os.Exit(3)
}

// startHelper re-executes the test binary as a helper process running the test
// named run in mode, waits until it prints ready, and returns the function that kills
// it with SIGKILL (also run at cleanup) and reports when it died.
func startHelper(t *testing.T, run, mode, ready string) (kill func() time.Time) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperURLEnv+"="+dbURL(t))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case line := <-lines:
		require.Equal(t, ready, strings.TrimSpace(line), "helper process output")
	case <-time.After(60 * time.Second):
		t.Fatalf("the helper process did not say %q within 60s", ready)
	}
	return func() time.Time {
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		at := time.Now()
		err := cmd.Wait()
		killed = true
		var exitErr *exec.ExitError
		require.ErrorAs(t, err, &exitErr)
		ws, ok := exitErr.Sys().(syscall.WaitStatus)
		require.True(t, ok)
		require.Equal(t, syscall.SIGKILL, ws.Signal(), "the helper died of SIGKILL")
		for range lines { // drain
		}
		return at
	}
}

func TestCommittedEventsSurviveAProcessKill(t *testing.T) {
	e := newEnv(t)
	startHelper(t, "TestHelperProcess", "crash", "committed")()

	require.Equal(t, crashEvents, outboxCount(t, e.pool), "the committed events are in the outbox")
	rec := deliveries(t, e, events.RelayConfig{})
	waitFor(t, 10*time.Second, "every event", func() bool { return rec.count() >= crashEvents })
	got := map[string]int{}
	for _, m := range rec.all() {
		got[string(m.Payload)]++
	}
	for n := 0; n < crashEvents; n++ {
		assert.Equal(t, 1, got[fmt.Sprint(n)], "event %d", n)
	}
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return outboxCount(t, e.pool) == 0 })
}
