package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Where a [Server] came from, as found in [Server.Source].
const (
	// SourceEnv is a server named by the DATABASE_URL environment variable.
	SourceEnv = "DATABASE_URL"
	// SourceLocalhost is a server that was already listening on 127.0.0.1:5432.
	SourceLocalhost = "localhost:5432"
	// SourceLocal is an ephemeral server started from local PostgreSQL binaries.
	SourceLocal = "local binaries"
	// SourceDocker is a server started in a Docker container.
	SourceDocker = "docker"
)

// LocalhostURL is the connection string Find tries for a server on 127.0.0.1:5432:
// user postgres, database postgres, no password (trust authentication).
const LocalhostURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	// ErrNoServer is matched (with errors.Is) by the error Find returns when no
	// PostgreSQL server could be found or started; the error is a *NoServerError that
	// says why each way failed.
	ErrNoServer = errors.New("pgserver: no PostgreSQL server found; to get one, set DATABASE_URL, " +
		"start PostgreSQL on 127.0.0.1:5432 (user postgres, trust authentication), " +
		"install the PostgreSQL server binaries (e.g. apt-get install postgresql) or start a Docker engine")

	// ErrNoBinaries is matched by the error StartLocal returns when initdb and postgres
	// are neither on PATH nor under /usr/lib/postgresql/*/bin (or the directories given
	// with WithBinDirs).
	ErrNoBinaries = errors.New("pgserver: PostgreSQL server binaries (initdb, postgres) not found; " +
		"install them (e.g. apt-get install postgresql) or put their directory on PATH")

	// ErrNotLocal is returned by Stop and Start on a server that pgserver did not start
	// from local binaries: only those can be stopped and started again.
	ErrNotLocal = errors.New("pgserver: only a server started from local binaries can be stopped and started; use StartLocal")

	// ErrClosed is returned by Start on a server that was closed.
	ErrClosed = errors.New("pgserver: server is closed")
)

// NoServerError is the error Find returns when every way to get a server failed. It
// matches ErrNoServer and lists why each way failed.
type NoServerError struct {
	// Attempts holds one entry per way Find tried, in order.
	Attempts []Attempt
}

// Attempt is one way Find tried to get a server and why it did not work.
type Attempt struct {
	// Source is one of the Source constants.
	Source string
	// Err says why it failed; it is ErrSkipped when an option skipped the step.
	Err error
}

// ErrSkipped is the Err of an Attempt that an option (SkipEnv, SkipLocalhost,
// SkipLocal, SkipDocker) skipped.
var ErrSkipped = errors.New("skipped by option")

// Error lists every attempt, then says how to get a server.
func (e *NoServerError) Error() string {
	var b strings.Builder
	b.WriteString("pgserver: no PostgreSQL server found or started:")
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "\n  - %s: %v", a.Source, a.Err)
	}
	b.WriteString("\nTo get one: set DATABASE_URL (e.g. postgres://user:password@host:5432/postgres), " +
		"start PostgreSQL on 127.0.0.1:5432 with user postgres and trust authentication, " +
		"install the PostgreSQL server binaries (e.g. apt-get install postgresql) " +
		"or start a Docker engine (the postgres:15 image is used)")
	return b.String()
}

// Is reports whether target is ErrNoServer.
func (e *NoServerError) Is(target error) bool { return target == ErrNoServer }

// Server is a reachable PostgreSQL server. Its methods are safe for concurrent use.
type Server struct {
	// URL is a connection string for the server's maintenance database, with a user
	// that may create databases.
	URL string
	// Source says where the server came from: one of SourceEnv, SourceLocalhost,
	// SourceLocal or SourceDocker.
	Source string

	host string
	port int

	mu     sync.Mutex
	closed bool
	local  *localServer // set for SourceLocal
	stop   func() error // releases a docker container
}

// Host returns the host name or address the server listens on, as in URL.
func (s *Server) Host() string { return s.host }

// Port returns the TCP port the server listens on, as in URL.
func (s *Server) Port() int { return s.port }

// Close stops the server when Find or StartLocal started it (a local server is shut
// down in immediate mode and its temporary directory removed; a container is removed);
// for a server that was already running it does nothing. Close is idempotent.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	switch {
	case s.local != nil:
		return s.local.close()
	case s.stop != nil:
		return s.stop()
	}
	return nil
}

// Stop shuts a server started from local binaries down in immediate mode (as
// `pg_ctl stop -m immediate` does: clients are cut off at once) and waits until it has
// exited; its data stay, so Start brings it back on the same port with the same
// databases. Stopping a stopped server does nothing. For other servers Stop returns
// ErrNotLocal.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.local == nil {
		return ErrNotLocal
	}
	if s.closed {
		return nil
	}
	return s.local.stop(ctx)
}

// StopFast shuts a server started from local binaries down in fast mode (as
// `pg_ctl stop -m fast` does: open transactions are rolled back and clients told the
// server is shutting down, SQLSTATE 57P01) and waits until it has exited; otherwise as
// Stop.
func (s *Server) StopFast(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.local == nil {
		return ErrNotLocal
	}
	if s.closed {
		return nil
	}
	return s.local.stopWith(ctx, syscall.SIGINT)
}

// Start starts a server stopped with Stop or StopFast again, on the same port with the same data,
// and returns once it accepts connections or ctx ends. Starting a running server does
// nothing. For servers not started from local binaries Start returns ErrNotLocal; after
// Close it returns ErrClosed.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.local == nil {
		return ErrNotLocal
	}
	if s.closed {
		return ErrClosed
	}
	return s.local.start(ctx)
}

// Find returns a PostgreSQL server, trying in order:
//
//  1. the DATABASE_URL environment variable: if it is set, the server it names must
//     answer, or Find fails (a configured server that is down is an error, not a
//     reason to use another one);
//  2. a server on 127.0.0.1:5432 that lets user postgres in without a password;
//  3. local PostgreSQL binaries, started as with StartLocal;
//  4. Docker (image postgres:15) through dockertest, when a Docker engine answers.
//
// Options skip steps or tune them. When no step gives a server, the error matches
// ErrNoServer and says how to get one. The caller must Close the returned server.
func Find(ctx context.Context, opts ...Option) (*Server, error) {
	o := newOptions(opts)
	var attempts []Attempt

	if o.skipEnv {
		attempts = append(attempts, Attempt{SourceEnv, ErrSkipped})
	} else if url := os.Getenv("DATABASE_URL"); url != "" {
		if err := ping(ctx, url); err != nil {
			return nil, fmt.Errorf("pgserver: DATABASE_URL is set but the server it names does not answer "+
				"(fix or unset DATABASE_URL): %w", err)
		}
		o.logger.Info("pgserver: using the server named by DATABASE_URL")
		return newServer(url, SourceEnv)
	} else {
		attempts = append(attempts, Attempt{SourceEnv, errors.New("not set")})
	}

	if o.skipLocalhost {
		attempts = append(attempts, Attempt{SourceLocalhost, ErrSkipped})
	} else if err := probeLocalhost(ctx); err != nil {
		o.logger.Debug("pgserver: no usable server on 127.0.0.1:5432", "err", err)
		attempts = append(attempts, Attempt{SourceLocalhost, err})
	} else {
		o.logger.Info("pgserver: using the server on 127.0.0.1:5432")
		return newServer(LocalhostURL, SourceLocalhost)
	}

	if o.skipLocal {
		attempts = append(attempts, Attempt{SourceLocal, ErrSkipped})
	} else if srv, err := startLocal(ctx, o); err != nil {
		o.logger.Debug("pgserver: could not start a server from local binaries", "err", err)
		attempts = append(attempts, Attempt{SourceLocal, err})
	} else {
		return srv, nil
	}

	if o.skipDocker {
		attempts = append(attempts, Attempt{SourceDocker, ErrSkipped})
	} else if srv, err := startDocker(ctx, o); err != nil {
		o.logger.Debug("pgserver: could not start a server in Docker", "err", err)
		attempts = append(attempts, Attempt{SourceDocker, err})
	} else {
		return srv, nil
	}

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgserver: looking for a PostgreSQL server: %w", err)
	}
	return nil, &NoServerError{Attempts: attempts}
}

// newServer returns a Server for url, taking host and port from it.
func newServer(url, source string) (*Server, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgserver: parse the %s connection string: %w", source, err)
	}
	return &Server{URL: url, Source: source, host: cfg.Host, port: int(cfg.Port)}, nil
}

func probeLocalhost(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", "127.0.0.1:5432")
	if err != nil {
		return err
	}
	_ = c.Close()
	return ping(ctx, LocalhostURL)
}

// ping connects to url and pings the server, within 10 seconds.
func ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}
