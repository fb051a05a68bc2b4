package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// debianBinGlob is where Debian and Ubuntu install the PostgreSQL server binaries, one
// directory per major version.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path, less the
// terminating NUL).
const maxSocketPath = 107

// FreePort returns a TCP port on 127.0.0.1 on which nothing listened at the time of the
// call. Pass it to WithPort to know a server's port before the server is up (another
// process may still take the port in between; StartLocal then fails).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FindBinaries returns the directory of the PostgreSQL server binaries StartLocal would
// use (only WithBinDirs matters among opts), or an error matching ErrNoBinaries.
func FindBinaries(opts ...Option) (string, error) {
	return findBinDir(newOptions(opts).binDirs)
}

// StartLocal starts an ephemeral PostgreSQL server from the local binaries (initdb and
// postgres, found on PATH or under /usr/lib/postgresql/*/bin, highest version first;
// see WithBinDirs), whatever else is available, and returns once it accepts
// connections.
//
// The server lives in a new temporary directory (data, unix socket and log), listens
// on 127.0.0.1 only, on a free port or the one given with WithPort, lets user postgres
// in without a password (trust), and runs with fsync off: it is for tests and
// development, never for data that matter. When the process runs as root it runs as an
// unprivileged user (see WithUser) that owns the directory. It is the child of the
// calling process and is stopped by the kernel if that process dies, so a crashed
// test leaves no server behind (only its directory under $TMPDIR).
//
// Stop and Start stop and restart it with the same data and port; Close stops it and
// removes the directory. When the binaries are missing the error matches ErrNoBinaries.
func StartLocal(ctx context.Context, opts ...Option) (*Server, error) {
	return startLocal(ctx, newOptions(opts))
}

func startLocal(ctx context.Context, o *options) (*Server, error) {
	return launchLocal(ctx, o, func(l *localServer, conf string) error { return l.prepare(ctx, conf) })
}

// launchLocal makes a server's temporary directory, has create fill its data directory
// (with conf, the rendered WithSetting lines, to append to postgresql.conf), and starts
// the server on a port of o's.
func launchLocal(ctx context.Context, o *options, create func(l *localServer, conf string) error) (*Server, error) {
	binDir, err := findBinDir(o.binDirs)
	if err != nil {
		return nil, err
	}
	if o.port < 0 || o.port > 65535 {
		return nil, fmt.Errorf("pgserver: port %d is out of range 1-65535 (or 0 for a free port)", o.port)
	}
	conf, err := renderSettings(o.settings)
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount(o.user)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "uno-pgserver-*")
	if err != nil {
		return nil, fmt.Errorf("pgserver: create a temporary directory for the server: %w", err)
	}
	l := &localServer{
		logger:  o.logger,
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
		acct:    acct,
	}
	started := false
	defer func() {
		if !started {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := create(l, conf); err != nil {
		return nil, err
	}

	for attempt := 1; ; attempt++ {
		l.port = o.port
		if l.port == 0 {
			if l.port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		err = l.start(ctx)
		if err == nil {
			break
		}
		// A port chosen by FreePort may have been taken since: choose another.
		if o.port == 0 && errors.Is(err, errPortInUse) && attempt < 5 {
			l.logger.Debug("pgserver: port taken, trying another", "port", l.port)
			continue
		}
		return nil, err
	}
	started = true
	return &Server{
		URL:    l.url(),
		Source: SourceLocal,
		host:   "127.0.0.1",
		port:   l.port,
		local:  l,
	}, nil
}

// localServer is a server started from local binaries. Its methods are called with
// the owning Server's mutex held.
type localServer struct {
	logger  *slog.Logger
	binDir  string
	dir     string // the temporary directory; everything below is in it
	dataDir string
	logPath string
	port    int
	acct    *account // nil: run as the calling process's user
	proc    *process // the running postmaster; nil when stopped
}

// process is a running postmaster, a child of this process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // its exit status, set before done is closed
}

// account is the unprivileged user a server runs as when this process runs as root.
type account struct {
	name     string
	uid, gid uint32
}

var errPortInUse = errors.New("pgserver: port already in use")

func (l *localServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", l.port)
}

// prepare makes the directory layout and runs initdb.
func (l *localServer) prepare(ctx context.Context, conf string) error {
	sockDir, err := l.layout()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := l.command(ctx, "initdb", "-D", l.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgserver: initdb in %s failed: %w\n%s", l.dataDir, err, strings.TrimSpace(out.String()))
	}
	return l.configure(sockDir, conf)
}

// layout gives the server's directory to its user and makes the unix socket directory,
// whose path it returns ("" when too long for a socket: the server then listens on TCP
// only).
func (l *localServer) layout() (string, error) {
	if l.acct != nil {
		if err := os.Chown(l.dir, int(l.acct.uid), int(l.acct.gid)); err != nil {
			return "", fmt.Errorf("pgserver: give %s to user %s: %w", l.dir, l.acct.name, err)
		}
		if err := checkReachable(l.dir, l.acct); err != nil {
			return "", err
		}
	}
	sockDir := filepath.Join(l.dir, "sock")
	if err := l.mkdir(sockDir); err != nil {
		return "", err
	}
	if len(sockDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		l.logger.Debug("pgserver: temporary directory path too long for a unix socket; TCP only", "dir", l.dir)
		sockDir = ""
	}
	return sockDir, nil
}

// configure appends uno's settings and then conf to the data directory's
// postgresql.conf (later lines win).
func (l *localServer) configure(sockDir, conf string) error {
	base := "\n# Added by uno pgserver: an ephemeral server for tests and development.\n" +
		"listen_addresses = '127.0.0.1'\n" +
		"unix_socket_directories = " + quoteSetting(sockDir) + "\n" +
		"fsync = off\n" +
		"full_page_writes = off\n" +
		"max_connections = 200\n"
	f, err := os.OpenFile(filepath.Join(l.dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgserver: configure the server: %w", err)
	}
	_, err = f.WriteString(base + conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: configure the server: %w", err)
	}
	return nil
}

// mkdir creates dir owned by the server's user.
func (l *localServer) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if l.acct != nil {
		if err := os.Chown(dir, int(l.acct.uid), int(l.acct.gid)); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

// command returns a command running the binary name as the server's user.
func (l *localServer) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(l.binDir, name), args...)
	l.setup(cmd)
	return cmd
}

func (l *localServer) setup(cmd *exec.Cmd) {
	cmd.Dir = l.dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if l.acct != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: l.acct.uid, Gid: l.acct.gid}
	}
}

// start starts the postmaster unless it runs, and waits until it accepts connections.
func (l *localServer) start(ctx context.Context) error {
	if l.proc != nil {
		select {
		case <-l.proc.done: // it exited on its own: start it again
			l.proc = nil
		default:
			return nil
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	var offset int64
	if fi, err := os.Stat(l.logPath); err == nil {
		offset = fi.Size()
	}
	p, err := l.launch()
	if err != nil {
		return err
	}
	if err := l.waitReady(ctx, p, offset); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p.stop(stopCtx)
		cancel()
		return err
	}
	l.proc = p
	who := "current user"
	if l.acct != nil {
		who = l.acct.name
	}
	l.logger.Info("pgserver: started PostgreSQL from local binaries",
		"port", l.port, "dir", l.dir, "user", who, "bin", l.binDir)
	return nil
}

// launch starts the postmaster as a child process.
func (l *localServer) launch() (*process, error) {
	logf, err := os.OpenFile(l.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgserver: open the server log: %w", err)
	}
	defer logf.Close()
	if l.acct != nil {
		_ = logf.Chown(int(l.acct.uid), int(l.acct.gid))
	}

	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig has the kernel send SIGQUIT (PostgreSQL's immediate shutdown) to the
		// postmaster when the thread that started it exits, so a test process that dies
		// (killed, timed out) takes its server with it. The Go runtime may retire idle
		// threads, so this goroutine keeps its thread locked for the server's whole life
		// and never unlocks it: the thread ends with the goroutine, after the server.
		runtime.LockOSThread()
		cmd := exec.Command(filepath.Join(l.binDir, "postgres"), "-D", l.dataDir, "-p", strconv.Itoa(l.port))
		l.setup(cmd)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr.Setpgid = true // keep terminal signals (Ctrl-C) for the test process
		cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("pgserver: start postgres: %w", err)
	}
	return p, nil
}

// waitReady waits until the server started as p accepts connections.
func (l *localServer) waitReady(ctx context.Context, p *process, logOffset int64) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-p.done:
			tail := l.logSince(logOffset)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%w: %d", errPortInUse, l.port)
			}
			return fmt.Errorf("pgserver: postgres exited while starting (%v); its log (%s) ends with:\n%s",
				p.err, l.logPath, tail)
		default:
		}
		lastErr = l.probe(ctx)
		if lastErr == nil {
			return nil
		}
		if errors.Is(lastErr, errPortInUse) {
			return lastErr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: postgres on port %d did not accept connections in time (%w); "+
				"last error: %v; its log (%s) ends with:\n%s",
				l.port, ctx.Err(), lastErr, l.logPath, l.logSince(logOffset))
		case <-p.done:
		case <-tick.C:
		}
	}
}

// probe connects to the server and checks it is this one, not another on the port.
func (l *localServer) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, l.url())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		return err
	}
	if filepath.Clean(dataDir) != filepath.Clean(l.dataDir) {
		return fmt.Errorf("%w: %d (by the server of %s)", errPortInUse, l.port, dataDir)
	}
	return nil
}

// logSince returns the last lines the server logged after offset.
func (l *localServer) logSince(offset int64) string {
	f, err := os.Open(l.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "(unreadable log: " + err.Error() + ")"
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// stop shuts the postmaster down in immediate mode.
func (l *localServer) stop(ctx context.Context) error { return l.stopWith(ctx, syscall.SIGQUIT) }

func (l *localServer) stopWith(ctx context.Context, sig syscall.Signal) error {
	if l.proc == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	l.proc.stopWith(ctx, sig)
	l.proc = nil
	l.logger.Info("pgserver: stopped PostgreSQL", "port", l.port)
	return nil
}

// close stops the server and removes its directory.
func (l *localServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.stop(ctx)
	if rerr := os.RemoveAll(l.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("pgserver: remove the server directory: %w", rerr))
	}
	return err
}

// stop sends SIGQUIT (immediate shutdown, as `pg_ctl stop -m immediate` does) and waits
// for the exit; when ctx ends first it kills the server's whole process group.
func (p *process) stop(ctx context.Context) { p.stopWith(ctx, syscall.SIGQUIT) }

// stopWith sends sig (SIGQUIT: immediate shutdown; SIGINT: fast shutdown, as
// `pg_ctl stop -m fast` does) and waits for the exit; when ctx ends first it kills the
// server's whole process group.
func (p *process) stopWith(ctx context.Context, sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-ctx.Done():
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// findBinDir returns the directory holding initdb and postgres.
func findBinDir(dirs []string) (string, error) {
	where := strings.Join(dirs, ", ")
	if dirs == nil {
		where = "PATH, " + debianBinGlob
		if p, err := exec.LookPath("initdb"); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
		dirs = append(dirs, versionDirs(debianBinGlob)...)
	}
	for _, d := range dirs {
		// initdb on PATH is often a symlink (/usr/local/bin/initdb ->
		// /usr/lib/postgresql/15/bin/initdb); postgres lives beside the real file.
		real, err := filepath.EvalSymlinks(filepath.Join(d, "initdb"))
		if err != nil || !isExecutable(real) {
			continue
		}
		dir := filepath.Dir(real)
		if isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w (looked in %s)", ErrNoBinaries, where)
}

// versionDirs expands glob, a pattern with one * for a version, highest version first.
func versionDirs(glob string) []string {
	matches, _ := filepath.Glob(glob)
	i := strings.Index(glob, "*")
	version := func(m string) []int {
		part, _, _ := strings.Cut(m[i:], "/")
		var v []int
		for _, f := range strings.Split(part, ".") {
			n, _ := strconv.Atoi(f)
			v = append(v, n)
		}
		return v
	}
	slices.SortFunc(matches, func(a, b string) int { return slices.Compare(version(b), version(a)) })
	return matches
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// serverAccount returns the user to run the server as: nil (this process's user) when
// not running as root, else name, or postgres, or nobody.
func serverAccount(name string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	names := []string{"postgres", "nobody"}
	if name != "" {
		names = []string{name}
	}
	var problems []string
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			problems = append(problems, fmt.Sprintf("user %s has a non-numeric uid or gid", n))
			continue
		}
		if uid == 0 {
			problems = append(problems, fmt.Sprintf("user %s is root", n))
			continue
		}
		return &account{name: n, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("pgserver: this process runs as root, which PostgreSQL refuses, and there is no "+
		"unprivileged user to run the server as (%s); create one (e.g. useradd postgres) or name one with WithUser",
		strings.Join(problems, "; "))
}

// checkReachable reports whether acct may search every directory above dir.
func checkReachable(dir string, acct *account) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		perm := fi.Mode().Perm()
		ok := perm&0o001 != 0
		if st, isUnix := fi.Sys().(*syscall.Stat_t); isUnix {
			ok = ok || (st.Uid == acct.uid && perm&0o100 != 0) || (st.Gid == acct.gid && perm&0o010 != 0)
		}
		if !ok {
			return fmt.Errorf("pgserver: user %s, who runs the server, cannot reach %s (no search permission on %s); "+
				"set TMPDIR to a directory it can reach, such as /tmp", acct.name, dir, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// serverEnv is the environment of initdb and postgres: this process's, without the
// libpq PG* variables, which must not steer the server.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// renderSettings turns WithSetting options into postgresql.conf lines.
func renderSettings(settings [][2]string) (string, error) {
	var b strings.Builder
	for _, s := range settings {
		if !settingName.MatchString(s[0]) {
			return "", fmt.Errorf("pgserver: %q is not a valid configuration parameter name", s[0])
		}
		if strings.ContainsAny(s[1], "\n\r\x00") {
			return "", fmt.Errorf("pgserver: the value of configuration parameter %s contains a line break or NUL", s[0])
		}
		fmt.Fprintf(&b, "%s = %s\n", s[0], quoteSetting(s[1]))
	}
	return b.String(), nil
}

func quoteSetting(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
