package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotStandby is returned by Promote on a server that is not in recovery.
var ErrNotStandby = errors.New("pgserver: the server is not a standby (not in recovery); only a standby can be promoted")

// StartStandby starts a streaming hot standby of s, which must have been started from
// local binaries and be running, and returns once the standby streams from s (and, with
// [Synchronous], once s counts it as its synchronous standby).
//
// The standby is copied from s with pg_basebackup -R, runs from the same binaries in a
// temporary directory of its own, listens on 127.0.0.1 on a free port (or the one given
// with [WithPort]) and accepts read-only connections (hot_standby). Options as for
// [StartLocal] ([WithSetting] adds settings to the standby only, e.g.
// WithSetting("recovery_min_apply_delay", "200ms")), plus [Synchronous]. The standby is
// stopped, started and closed like any local server; [Server.Promote] makes it a
// primary, and [Server.SetSetting] changes its replay delay while it runs.
//
// With Synchronous, s runs with synchronous_standby_names naming the standby: while
// that standby is down, commits on s wait for it.
func (s *Server) StartStandby(ctx context.Context, opts ...Option) (*Server, error) {
	s.mu.Lock()
	primary := s.local
	closed := s.closed
	s.mu.Unlock()
	if primary == nil {
		return nil, fmt.Errorf("pgserver: StartStandby needs a primary started from local binaries: %w", ErrNotLocal)
	}
	if closed {
		return nil, ErrClosed
	}
	// The standby runs the primary's binaries (a base backup needs the same major
	// version) and logs where the primary does, unless opts say otherwise.
	o := newOptions(append([]Option{WithBinDirs([]string{primary.binDir}), WithLogger(primary.logger)}, opts...))
	var name string
	standby, err := launchLocal(ctx, o, func(l *localServer, conf string) error {
		name = "uno_standby_" + filepath.Base(l.dir)
		name = strings.NewReplacer("-", "_").Replace(name)
		return l.copyFrom(ctx, primary.port, name, conf)
	})
	if err != nil {
		return nil, err
	}
	if err := s.awaitStandby(ctx, name, o.synchronous); err != nil {
		_ = standby.Close()
		return nil, err
	}
	return standby, nil
}

// copyFrom fills the data directory with a base backup of the primary on port, set up
// to stream from it as a standby named name.
func (l *localServer) copyFrom(ctx context.Context, port int, name, conf string) error {
	sockDir, err := l.layout()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := l.command(ctx, "pg_basebackup", "-D", l.dataDir, "-R", "-X", "stream",
		"--checkpoint=fast", "--no-sync", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgserver: pg_basebackup from the primary on port %d failed: %w\n%s", port, err, strings.TrimSpace(out.String()))
	}
	// The copy holds the primary's postgresql.conf; the lines appended here win. The
	// walreceiver reports cluster_name as its application_name, by which the primary's
	// synchronous_standby_names and pg_stat_replication know the standby.
	standbyConf := "hot_standby = on\n" +
		"hot_standby_feedback = on\n" +
		"wal_receiver_status_interval = 1s\n" +
		"cluster_name = " + quoteSetting(name) + "\n" +
		conf
	return l.configure(sockDir, standbyConf)
}

// awaitStandby waits until the primary s sees the standby name streaming, and with
// synchronous makes it s's synchronous standby and waits until s says so.
func (s *Server) awaitStandby(ctx context.Context, name string, synchronous bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return fmt.Errorf("pgserver: connect to the primary to watch its standby: %w", err)
	}
	defer conn.Close(context.Background())
	want := "async"
	if synchronous {
		want = "sync"
		if _, err := conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+quoteSetting(`"`+name+`"`)); err != nil {
			return fmt.Errorf("pgserver: make the standby synchronous: %w", err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			return fmt.Errorf("pgserver: make the standby synchronous: %w", err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var state string
		err := conn.QueryRow(ctx, `SELECT state || '/' || sync_state FROM pg_stat_replication WHERE application_name = $1`, name).Scan(&state)
		if err == nil && state == "streaming/"+want {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("pgserver: watch the standby from the primary: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: the standby %s did not reach state streaming/%s on the primary in time (last: %q): %w", name, want, state, ctx.Err())
		case <-tick.C:
		}
	}
}

// Promote makes a standby a primary (pg_promote) and returns once it accepts writes. It
// returns an error matching ErrNotStandby when the server is not in recovery.
func (s *Server) Promote(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return fmt.Errorf("pgserver: connect to the standby to promote it: %w", err)
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return fmt.Errorf("pgserver: promote: %w", err)
	}
	if !inRecovery {
		return ErrNotStandby
	}
	var promoted bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&promoted); err != nil {
		return fmt.Errorf("pgserver: promote: %w", err)
	}
	if !promoted {
		return errors.New("pgserver: promote: the standby did not leave recovery within 60 seconds; see its log")
	}
	return nil
}

// SetSetting changes a configuration parameter of a running server (ALTER SYSTEM, then
// a configuration reload), e.g. SetSetting(ctx, "recovery_min_apply_delay", "300ms") on
// a standby to delay its replay. Parameters that need a restart take effect at the next
// Start. An empty value resets the parameter.
func (s *Server) SetSetting(ctx context.Context, name, value string) error {
	if !settingName.MatchString(name) {
		return fmt.Errorf("pgserver: %q is not a valid configuration parameter name", name)
	}
	stmt := "ALTER SYSTEM SET " + name + " = " + quoteSetting(value)
	if value == "" {
		stmt = "ALTER SYSTEM RESET " + name
	}
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return fmt.Errorf("pgserver: connect to set %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("pgserver: set %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pgserver: reload the configuration after setting %s: %w", name, err)
	}
	return nil
}
