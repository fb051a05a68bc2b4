package pgserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

// startDocker runs the image in a Docker container, when a Docker engine answers
// within a few seconds, and waits until PostgreSQL in it accepts connections.
func startDocker(ctx context.Context, o *options) (*Server, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("no Docker client: %w", err)
	}
	release := func() {
		if pool.Client.HTTPClient != nil {
			pool.Client.HTTPClient.CloseIdleConnections()
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = pool.Client.PingWithContext(pingCtx)
	cancel()
	if err != nil {
		release()
		return nil, fmt.Errorf("no Docker engine answers (start one, or set DOCKER_HOST): %w", err)
	}

	repo, tag, _ := strings.Cut(o.dockerImage, ":")
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: repo,
		Tag:        tag,
		Env:        []string{"POSTGRES_HOST_AUTH_METHOD=trust"},
		Cmd:        []string{"postgres", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"},
		Labels:     map[string]string{"uno.pgserver": "ephemeral"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.NeverRestart()
	})
	if err != nil {
		release()
		return nil, fmt.Errorf("run %s: %w", o.dockerImage, err)
	}
	purge := func() error {
		defer release()
		if err := pool.Purge(res); err != nil {
			return fmt.Errorf("pgserver: remove the PostgreSQL container %s: %w", res.Container.ID, err)
		}
		return nil
	}

	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", res.GetHostPort("5432/tcp"))
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err = ping(waitCtx, url)
		if err == nil {
			break
		}
		select {
		case <-waitCtx.Done():
			return nil, errors.Join(
				fmt.Errorf("PostgreSQL in container %s did not accept connections in time: %w", res.Container.ID, err),
				purge())
		case <-time.After(200 * time.Millisecond):
		}
	}
	srv, err := newServer(url, SourceDocker)
	if err != nil {
		return nil, errors.Join(err, purge())
	}
	srv.stop = purge
	o.logger.Info("pgserver: started PostgreSQL in Docker", "image", o.dockerImage, "container", res.Container.ID, "url", url)
	return srv, nil
}
