package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a reachable PostgreSQL server.
type Server struct {
	// URL is a connection string for the server's maintenance database, with a user
	// that may create databases.
	URL string
	// Source says where the server came from: "DATABASE_URL", "localhost:5432",
	// "local binaries" or "docker".
	Source string

	stop func() error
}

// Close stops the server when Find or StartLocal started it; for a server that was
// already running it does nothing.
func (s *Server) Close() error {
	if s == nil || s.stop == nil {
		return nil
	}
	stop := s.stop
	s.stop = nil
	return stop()
}

// ErrNoServer is returned by Find when no PostgreSQL server could be found or started.
var ErrNoServer = errors.New("pgserver: no PostgreSQL server found; set DATABASE_URL, " +
	"start one on 127.0.0.1:5432, install the PostgreSQL server binaries " +
	"(apt-get install postgresql) or run a Docker engine")

// Find returns a PostgreSQL server, trying in order DATABASE_URL, 127.0.0.1:5432,
// local binaries and Docker. The caller must Close the returned server.
func Find(ctx context.Context) (*Server, error) {
	if url := os.Getenv("DATABASE_URL"); url != "" {
		if err := ping(ctx, url); err != nil {
			return nil, fmt.Errorf("pgserver: DATABASE_URL is set but the server does not answer: %w", err)
		}
		return &Server{URL: url, Source: "DATABASE_URL"}, nil
	}
	const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	d := net.Dialer{Timeout: time.Second}
	if c, err := d.DialContext(ctx, "tcp", "127.0.0.1:5432"); err == nil {
		c.Close()
		if err := ping(ctx, localURL); err == nil {
			return &Server{URL: localURL, Source: "localhost:5432"}, nil
		}
	}
	return nil, ErrNoServer
}

func ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}
