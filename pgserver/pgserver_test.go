package pgserver_test

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/uno-framework/uno/pgserver"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperProcess())
	}
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s), sql)
	return s
}

// requireLocalhost skips the test when nothing usable listens on 127.0.0.1:5432,
// except under CI, where the machine's server must be up.
func requireLocalhost(t *testing.T, ctx context.Context) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgserver.LocalhostURL)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no PostgreSQL on 127.0.0.1:5432 under CI: %v", err)
		}
		t.Skipf("no PostgreSQL on 127.0.0.1:5432: %v", err)
	}
	_ = conn.Close(ctx)
}

func TestFindUsesDatabaseURL(t *testing.T) {
	ctx := testContext(t)
	requireLocalhost(t, ctx)
	// application_name marks the connection string, so the test sees Find used it.
	dbURL := pgserver.LocalhostURL + "&application_name=uno_pgserver_env_test"
	t.Setenv("DATABASE_URL", dbURL)

	srv, err := pgserver.Find(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })

	assert.Equal(t, pgserver.SourceEnv, srv.Source)
	assert.Equal(t, dbURL, srv.URL)
	assert.Equal(t, "127.0.0.1", srv.Host())
	assert.Equal(t, 5432, srv.Port())
	conn := connect(t, ctx, srv.URL)
	assert.Equal(t, "uno_pgserver_env_test", queryString(t, ctx, conn, "SELECT current_setting('application_name')"))
	assert.ErrorIs(t, srv.Stop(ctx), pgserver.ErrNotLocal)
	assert.ErrorIs(t, srv.Start(ctx), pgserver.ErrNotLocal)
}

func TestFindFailsWhenDatabaseURLDoesNotAnswer(t *testing.T) {
	ctx := testContext(t)
	port, err := pgserver.FreePort()
	require.NoError(t, err)
	t.Setenv("DATABASE_URL", fmt.Sprintf("postgres://alice:s3cret-pw@127.0.0.1:%d/app?sslmode=disable", port))

	srv, err := pgserver.Find(ctx)

	require.Error(t, err)
	assert.Nil(t, srv)
	assert.NotErrorIs(t, err, pgserver.ErrNoServer, "a configured server that is down is not replaced by another")
	assert.Contains(t, err.Error(), "DATABASE_URL")
	assert.Contains(t, err.Error(), strconv.Itoa(port))
	assert.NotContains(t, err.Error(), "s3cret-pw")
}

func TestFindUsesLocalhost(t *testing.T) {
	ctx := testContext(t)
	requireLocalhost(t, ctx)

	srv, err := pgserver.Find(ctx, pgserver.SkipEnv())
	require.NoError(t, err)

	assert.Equal(t, pgserver.SourceLocalhost, srv.Source)
	assert.Equal(t, pgserver.LocalhostURL, srv.URL)
	assert.Equal(t, 5432, srv.Port())
	assert.ErrorIs(t, srv.Stop(ctx), pgserver.ErrNotLocal)
	require.NoError(t, srv.Close())
	// Closing a server Find did not start leaves it running.
	conn := connect(t, ctx, srv.URL)
	require.NoError(t, conn.Ping(ctx))
}

func TestFindReportsHowToGetAServer(t *testing.T) {
	ctx := testContext(t)

	srv, err := pgserver.Find(ctx, pgserver.SkipEnv(), pgserver.SkipLocalhost(),
		pgserver.WithBinDirs([]string{"/nonexistent"}), pgserver.SkipDocker())

	require.ErrorIs(t, err, pgserver.ErrNoServer)
	assert.Nil(t, srv)
	var noServer *pgserver.NoServerError
	require.ErrorAs(t, err, &noServer)
	require.Len(t, noServer.Attempts, 4)
	assert.Equal(t, []string{pgserver.SourceEnv, pgserver.SourceLocalhost, pgserver.SourceLocal, pgserver.SourceDocker},
		[]string{noServer.Attempts[0].Source, noServer.Attempts[1].Source, noServer.Attempts[2].Source, noServer.Attempts[3].Source})
	assert.ErrorIs(t, noServer.Attempts[0].Err, pgserver.ErrSkipped)
	assert.ErrorIs(t, noServer.Attempts[2].Err, pgserver.ErrNoBinaries)
	msg := err.Error()
	for _, way := range []string{"set DATABASE_URL", "127.0.0.1:5432", "apt-get install postgresql", "Docker", "/nonexistent"} {
		assert.Contains(t, msg, way)
	}
}

// TestFindFallsBackToDocker runs the Docker step alone. Without a Docker engine (as on
// the CI machine) it must fail cleanly with ErrNoServer; with one, it must give a
// working server in a container.
func TestFindFallsBackToDocker(t *testing.T) {
	ctx := testContext(t)

	srv, err := pgserver.Find(ctx, pgserver.SkipEnv(), pgserver.SkipLocalhost(), pgserver.SkipLocal())

	if err != nil {
		require.ErrorIs(t, err, pgserver.ErrNoServer)
		var noServer *pgserver.NoServerError
		require.ErrorAs(t, err, &noServer)
		docker := noServer.Attempts[len(noServer.Attempts)-1]
		assert.Equal(t, pgserver.SourceDocker, docker.Source)
		assert.NotErrorIs(t, docker.Err, pgserver.ErrSkipped)
		assert.Contains(t, docker.Err.Error(), "Docker")
		return
	}
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	assert.Equal(t, pgserver.SourceDocker, srv.Source)
	conn := connect(t, ctx, srv.URL)
	require.NoError(t, conn.Ping(ctx))
}

func TestFindBinaries(t *testing.T) {
	requireBinaries(t)
	dir, err := pgserver.FindBinaries()
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(dir, "initdb"))
	assert.FileExists(t, filepath.Join(dir, "postgres"))

	_, err = pgserver.FindBinaries(pgserver.WithBinDirs([]string{t.TempDir()}))
	assert.ErrorIs(t, err, pgserver.ErrNoBinaries)
}

func TestStartLocalWithoutBinaries(t *testing.T) {
	ctx := testContext(t)

	srv, err := pgserver.StartLocal(ctx, pgserver.WithBinDirs([]string{"/nonexistent"}))

	require.ErrorIs(t, err, pgserver.ErrNoBinaries)
	assert.Nil(t, srv)
	assert.Contains(t, err.Error(), "/nonexistent")
	assert.Contains(t, err.Error(), "apt-get install postgresql")
}

func TestStartLocalRejectsBadSettings(t *testing.T) {
	ctx := testContext(t)
	requireBinaries(t)

	_, err := pgserver.StartLocal(ctx, pgserver.WithSetting("max_connections = 1; x", "1"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a valid configuration parameter name")

	_, err = pgserver.StartLocal(ctx, pgserver.WithPort(70000))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "70000")
}

// requireBinaries skips the test when the PostgreSQL server binaries are missing,
// except under CI.
func requireBinaries(t *testing.T) {
	t.Helper()
	_, err := pgserver.FindBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestFindStartsLocalServer forces Find to the local-binaries step and checks the whole
// life of the server: where it runs, as whom, its settings, Stop and Start, Close.
func TestFindStartsLocalServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	requireBinaries(t)
	port, err := pgserver.FreePort()
	require.NoError(t, err)

	srv, err := pgserver.Find(ctx, pgserver.SkipEnv(), pgserver.SkipLocalhost(), pgserver.SkipDocker(),
		pgserver.WithPort(port), pgserver.WithSetting("max_connections", "42"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })

	assert.Equal(t, pgserver.SourceLocal, srv.Source)
	assert.Equal(t, "127.0.0.1", srv.Host())
	assert.Equal(t, port, srv.Port())
	conn := connect(t, ctx, srv.URL)

	dataDir := queryString(t, ctx, conn, "SELECT current_setting('data_directory')")
	dir := filepath.Dir(dataDir)
	assert.Equal(t, filepath.Clean(os.TempDir()), filepath.Dir(dir), "the server lives in a temporary directory")
	assert.True(t, strings.HasPrefix(filepath.Base(dir), "uno-pgserver-"), dir)
	assert.Equal(t, "127.0.0.1", queryString(t, ctx, conn, "SHOW listen_addresses"))
	assert.Equal(t, "off", queryString(t, ctx, conn, "SHOW fsync"))
	assert.Equal(t, "42", queryString(t, ctx, conn, "SHOW max_connections"))
	assert.Equal(t, "postgres", queryString(t, ctx, conn, "SELECT current_user"))

	// The unix socket is in the temporary directory too.
	sockDir := queryString(t, ctx, conn, "SHOW unix_socket_directories")
	assert.Equal(t, filepath.Join(dir, "sock"), sockDir)
	sockConn := connect(t, ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", sockDir, port))
	require.NoError(t, sockConn.Ping(ctx))

	// Not root: neither the postmaster nor its data directory.
	backendPID := queryString(t, ctx, conn, "SELECT pg_backend_pid()::text")
	postmasterPID := procStatus(t, backendPID, "PPid")
	postmasterUID := strings.Fields(procStatus(t, postmasterPID, "Uid"))[0]
	assert.NotEqual(t, "0", postmasterUID, "the postmaster runs as root")
	fi, err := os.Stat(dataDir)
	require.NoError(t, err)
	assert.Equal(t, postmasterUID, strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)), "the data directory belongs to the server's user")
	if os.Geteuid() == 0 {
		assert.Equal(t, "postgres", userName(t, postmasterUID), "as root, the server runs as postgres when that user exists")
	}

	// Stop cuts clients off; the server no longer answers.
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	require.NoError(t, err)
	require.NoError(t, srv.Stop(ctx))
	require.NoError(t, srv.Stop(ctx), "stopping a stopped server does nothing")
	assert.Error(t, conn.Ping(ctx))
	_, err = pgx.Connect(ctx, srv.URL)
	require.Error(t, err)

	// Start brings it back on the same port with the same data.
	require.NoError(t, srv.Start(ctx))
	require.NoError(t, srv.Start(ctx), "starting a running server does nothing")
	assert.Equal(t, port, srv.Port())
	conn2 := connect(t, ctx, srv.URL)
	assert.Equal(t, "7", queryString(t, ctx, conn2, "SELECT v::text FROM kept"))
	require.NoError(t, conn2.Close(ctx))

	// Close stops it and removes its directory.
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close(), "Close is idempotent")
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = pgx.Connect(ctx, srv.URL)
	require.Error(t, err)
	assert.ErrorIs(t, srv.Start(ctx), pgserver.ErrClosed)
}

// TestStartLocalAsNamedUser starts a server directly, on a port of its choosing and, when
// running as root, as the user WithUser names.
func TestStartLocalAsNamedUser(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	requireBinaries(t)
	if os.Geteuid() != 0 {
		t.Log("not root: the server runs as the current user and WithUser is ignored")
	}

	srv, err := pgserver.StartLocal(ctx, pgserver.WithUser("nobody"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })

	assert.Equal(t, pgserver.SourceLocal, srv.Source)
	assert.NotZero(t, srv.Port())
	assert.NotEqual(t, 5432, srv.Port())
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(srv.Port()), u.Port())
	conn := connect(t, ctx, srv.URL)
	backendPID := queryString(t, ctx, conn, "SELECT pg_backend_pid()::text")
	uid := strings.Fields(procStatus(t, backendPID, "Uid"))[0]
	if os.Geteuid() == 0 {
		assert.Equal(t, "nobody", userName(t, uid))
	} else {
		assert.Equal(t, strconv.Itoa(os.Geteuid()), uid)
	}
}

const helperEnv = "UNO_PGSERVER_TEST_HELPER"

// helperProcess is this test binary run as a child by
// TestLocalServerDiesWithItsProcess: it starts a server, prints its postmaster's pid
// and directory, and waits to be killed.
func helperProcess() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pgserver.StartLocal(ctx)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	_ = conn.Close(ctx)
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	pid, _, _ := strings.Cut(string(pidFile), "\n")
	fmt.Println("READY", pid, dataDir)
	<-ctx.Done() // killed long before
	return 1
}

// TestLocalServerDiesWithItsProcess kills a process that started a local server and
// checks the server goes away with it instead of running on unattended.
func TestLocalServerDiesWithItsProcess(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	requireBinaries(t)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	fields := strings.Fields(line)
	require.Len(t, fields, 3, line)
	require.Equal(t, "READY", fields[0], line)
	pid, dataDir := fields[1], fields[2]
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(dataDir)) }) // the helper could not
	require.True(t, alive(pid), "the postmaster runs")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	require.Eventually(t, func() bool { return !alive(pid) }, time.Minute, 50*time.Millisecond,
		"the postmaster %s outlived the process that started it", pid)
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if state, ok := strings.CutPrefix(l, "State:"); ok {
			return !strings.HasPrefix(strings.TrimSpace(state), "Z")
		}
	}
	return true
}

// procStatus returns field of /proc/<pid>/status.
func procStatus(t *testing.T, pid, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%s/status", field, pid)
	return ""
}

func userName(t *testing.T, uid string) string {
	t.Helper()
	u, err := user.LookupId(uid)
	require.NoError(t, err)
	return u.Username
}
