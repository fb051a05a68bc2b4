package pgserver

import "log/slog"

// Option tunes Find and StartLocal.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	skipEnv       bool
	skipLocalhost bool
	skipLocal     bool
	skipDocker    bool
	binDirs       []string // nil: PATH, then /usr/lib/postgresql/*/bin
	port          int      // 0: a free port
	user          string   // "": postgres, else nobody (only when running as root)
	settings      [][2]string
	dockerImage   string
	synchronous   bool // StartStandby: a synchronous standby
}

func newOptions(opts []Option) *options {
	o := &options{dockerImage: "postgres:15"}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// WithLogger makes Find and StartLocal report progress (which server is used, where a
// local server runs) to logger. By default nothing is logged.
func WithLogger(logger *slog.Logger) Option {
	return func(o *options) { o.logger = logger }
}

// SkipEnv makes Find ignore the DATABASE_URL environment variable.
func SkipEnv() Option { return func(o *options) { o.skipEnv = true } }

// SkipLocalhost makes Find ignore a server on 127.0.0.1:5432.
func SkipLocalhost() Option { return func(o *options) { o.skipLocalhost = true } }

// SkipLocal makes Find not start a server from local binaries.
func SkipLocal() Option { return func(o *options) { o.skipLocal = true } }

// SkipDocker makes Find not try Docker.
func SkipDocker() Option { return func(o *options) { o.skipDocker = true } }

// WithBinDirs makes Find and StartLocal look for the PostgreSQL binaries (initdb,
// postgres) only in dirs, in order, instead of on PATH and under
// /usr/lib/postgresql/*/bin.
func WithBinDirs(dirs []string) Option {
	return func(o *options) { o.binDirs = append([]string{}, dirs...) }
}

// WithPort makes a server started from local binaries listen on port (on 127.0.0.1)
// instead of a free port chosen at start. Use it with FreePort to know the port
// before the server is up.
func WithPort(port int) Option { return func(o *options) { o.port = port } }

// WithUser names the operating-system user a server started from local binaries runs
// as when the process runs as root (PostgreSQL refuses to run as root). By default it
// is postgres when that user exists, else nobody. When the process does not run as
// root, the server runs as the process's own user and this option is ignored.
func WithUser(name string) Option { return func(o *options) { o.user = name } }

// WithSetting sets a server configuration parameter (postgresql.conf) of a server
// started from local binaries, e.g. WithSetting("max_connections", "20"). Later
// settings of the same name win.
func WithSetting(name, value string) Option {
	return func(o *options) { o.settings = append(o.settings, [2]string{name, value}) }
}

// WithDockerImage sets the image Find runs when it falls back to Docker; the default
// is postgres:15.
func WithDockerImage(image string) Option {
	return func(o *options) { o.dockerImage = image }
}

// Synchronous makes a standby started with [Server.StartStandby] a synchronous one: the
// primary then waits, on every commit, until the standby has written the commit's WAL
// to disk (synchronous_standby_names names it; synchronous_commit stays on), so a
// transaction reported committed survives the loss of the primary. Without it the
// standby replicates asynchronously. Other starts ignore it.
func Synchronous() Option { return func(o *options) { o.synchronous = true } }
