package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/uno-framework/uno/events"
	"github.com/uno-framework/uno/provider"
)

// Exit codes; the package documentation lists them for users.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitConfig      = 3
	exitUnreachable = 4
	exitNotMigrated = 5
	exitNotFound    = 6
)

// defaultTimeout bounds a command, connection included, unless --timeout says otherwise.
const defaultTimeout = 30 * time.Second

// usageText is printed for --help and after a usage error.
const usageText = `usage: uno [flags] <command> [command flags] [arguments]

commands:
  migrate [--sql]                        apply uno's migrations, or print their DDL
  outbox lag                             pending events, retrying, oldest age, dead letters
  outbox pending [--limit N]             the events waiting in the outbox, decoded
  deadletters list [--limit N] [--after ID]
  deadletters show ID
  deadletters requeue ID...              put dead letters back into the outbox
  deadletters purge --older-than D       delete dead letters older than D (e.g. 72h, 7d)
  health                                 reachability, latency, server, pool, outbox lag

flags (before the command, or after it before its arguments):
  --database-url URL   the database (default: DATABASE_URL, else the PG* variables)
  --json               JSON output for scripts
  --timeout D          give up after D, connection included (default 30s)

exit codes: 0 done, 1 failed, 2 usage, 3 bad or missing database URL,
4 database unreachable, 5 database not migrated (run uno migrate), 6 not found
`

// cli is one run of the command: its output and the flags shared by every command.
type cli struct {
	out    io.Writer
	errOut io.Writer

	databaseURL string
	json        bool
	timeout     time.Duration
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// configError is a missing or malformed database URL.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// unreachableError is a database that cannot be reached.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{out: stdout, errOut: stderr, timeout: defaultTimeout}
	fs := c.flagSet("uno")
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			err = usagef("%v", err)
		}
		return c.fail(err)
	}
	if fs.NArg() == 0 {
		return c.fail(usagef("no command given"))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.fail(c.dispatch(ctx, fs.Args()))
}

// flagSet returns a flag set named name with the shared flags, parsed into c.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.databaseURL, "database-url", c.databaseURL, "the database")
	fs.BoolVar(&c.json, "json", c.json, "JSON output")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "give up after this long")
	return fs
}

// dispatch runs the command args[0] with the rest of args.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	switch args[0] {
	case "migrate":
		return c.migrate(ctx, args[1:])
	case "outbox":
		if len(args) < 2 {
			return usagef("outbox: want a subcommand: lag or pending")
		}
		switch args[1] {
		case "lag":
			return c.outboxLag(ctx, args[2:])
		case "pending":
			return c.outboxPending(ctx, args[2:])
		}
		return usagef("outbox: unknown subcommand %q: want lag or pending", args[1])
	case "deadletters":
		if len(args) < 2 {
			return usagef("deadletters: want a subcommand: list, show, requeue or purge")
		}
		switch args[1] {
		case "list":
			return c.deadLettersList(ctx, args[2:])
		case "show":
			return c.deadLettersShow(ctx, args[2:])
		case "requeue":
			return c.deadLettersRequeue(ctx, args[2:])
		case "purge":
			return c.deadLettersPurge(ctx, args[2:])
		}
		return usagef("deadletters: unknown subcommand %q: want list, show, requeue or purge", args[1])
	case "health":
		return c.health(ctx, args[1:])
	case "help":
		_, err := io.WriteString(c.out, usageText)
		return err
	}
	return usagef("unknown command %q", args[0])
}

// parse parses a command's flags (name: the command, for messages) and checks that it
// gets between minArgs and maxArgs arguments (maxArgs < 0: no limit).
func (c *cli) parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%s: %v", fs.Name(), err)
	}
	rest := fs.Args()
	switch {
	case len(rest) < minArgs:
		return nil, usagef("%s: want at least %d argument(s), got %d", fs.Name(), minArgs, len(rest))
	case maxArgs >= 0 && len(rest) > maxArgs:
		return nil, usagef("%s: unexpected argument(s) %q (flags go before the arguments)", fs.Name(), rest[maxArgs:])
	}
	return rest, nil
}

// connect opens the database named by --database-url, else by the environment.
func (c *cli) connect(ctx context.Context) (*provider.Provider, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "uno-cli"
	}
	cfg.PoolSize = 2
	cfg.MinConns = 0
	p, err := provider.New(ctx, cfg, provider.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		var verr provider.ValidationErrors
		if errors.As(err, &verr) {
			return nil, &configError{err: err}
		}
		return nil, &unreachableError{err: err}
	}
	return p, nil
}

// config reads the database configuration.
func (c *cli) config() (provider.Config, error) {
	if c.databaseURL != "" {
		cfg, err := provider.ParseConfig(c.databaseURL)
		if err != nil {
			return provider.Config{}, &configError{err: fmt.Errorf("--database-url: %w", err)}
		}
		return cfg, nil
	}
	if os.Getenv("DATABASE_URL") == "" && os.Getenv("PGHOST") == "" && os.Getenv("PGDATABASE") == "" {
		return provider.Config{}, &configError{err: errors.New("no database: give --database-url or set DATABASE_URL " +
			"(e.g. postgres://user:password@host:5432/dbname)")}
	}
	cfg, err := provider.ConfigFromEnv()
	if err != nil {
		return provider.Config{}, &configError{err: err}
	}
	return cfg, nil
}

// withProvider connects, runs fn, and closes the connection.
func (c *cli) withProvider(ctx context.Context, fn func(p *provider.Provider) error) error {
	p, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	return fn(p)
}

// exitCode returns the exit code of err.
func exitCode(err error) int {
	var (
		usage       *usageError
		config      *configError
		unreachable *unreachableError
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &config):
		return exitConfig
	case errors.As(err, &unreachable):
		return exitUnreachable
	case errors.Is(err, events.ErrNotMigrated):
		return exitNotMigrated
	case errors.Is(err, events.ErrDeadLetterNotFound):
		return exitNotFound
	}
	return exitFailed
}

// fail reports err (if any) on the error output and returns its exit code. With --json
// the report is a JSON object {"error": ..., "exit_code": ...}.
func (c *cli) fail(err error) int {
	code := exitCode(err)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = io.WriteString(c.out, usageText)
	case err == nil:
	case c.json:
		_ = json.NewEncoder(c.errOut).Encode(struct {
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}{err.Error(), code})
	default:
		fmt.Fprintf(c.errOut, "uno: %v\n", err)
		if code == exitUsage {
			fmt.Fprint(c.errOut, "\n"+usageText)
		}
	}
	return code
}
