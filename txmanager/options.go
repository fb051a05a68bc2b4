package txmanager

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
)

// Propagation says how a scope run by [Manager.Do] or opened by [Manager.Begin] relates to
// the transaction its context already carries, as in Spring.
type Propagation int

const (
	// PropagationRequired joins the context's transaction, or begins one when there is
	// none. It is the default.
	PropagationRequired Propagation = iota
	// PropagationNested runs the scope in a savepoint of the context's transaction, so
	// that its failure rolls back only the scope; with no transaction it begins one.
	PropagationNested
	// PropagationRequiresNew always begins a separate transaction on another connection;
	// the context's transaction, if any, is suspended until the scope ends.
	PropagationRequiresNew
	// PropagationSupports joins the context's transaction, or runs without one.
	PropagationSupports
	// PropagationMandatory joins the context's transaction and fails with
	// [ErrNoTransaction] when there is none.
	PropagationMandatory
	// PropagationNotSupported runs the scope without a transaction: the context's
	// transaction, if any, is suspended and the scope's statements run on the pool.
	PropagationNotSupported
	// PropagationNever runs the scope without a transaction and fails with
	// [ErrTransactionExists] when the context carries one.
	PropagationNever
)

var propagationNames = [...]string{
	PropagationRequired:     "required",
	PropagationNested:       "nested",
	PropagationRequiresNew:  "requires_new",
	PropagationSupports:     "supports",
	PropagationMandatory:    "mandatory",
	PropagationNotSupported: "not_supported",
	PropagationNever:        "never",
}

// String returns the propagation's name, such as "required" or "requires_new".
func (p Propagation) String() string {
	if p >= 0 && int(p) < len(propagationNames) {
		return propagationNames[p]
	}
	return fmt.Sprintf("Propagation(%d)", int(p))
}

// RetryPolicy says how a transaction that failed with a serialization failure (SQLSTATE
// 40001) or a deadlock (40P01) is retried. Only the scope that begins a transaction
// retries it; nothing is retried inside a transaction. Intervals grow exponentially with
// jitter (github.com/cenkalti/backoff/v4) and never run past the context's deadline.
//
// A zero field takes its value from the Manager's policy, whose zero fields take
// [DefaultRetryPolicy]'s.
type RetryPolicy struct {
	// MaxAttempts is the most times fn runs, the first attempt included; 1 disables
	// retries.
	MaxAttempts int
	// InitialInterval is the wait before the second attempt.
	InitialInterval time.Duration
	// MaxInterval caps the wait between two attempts.
	MaxInterval time.Duration
	// Multiplier is the factor each wait grows by; at least 1.
	Multiplier float64
	// RandomizationFactor spreads each wait at random over [w-f*w, w+f*w]; at most 1.
	// A negative value disables the jitter.
	RandomizationFactor float64
}

// DefaultRetryPolicy returns the policy of a Manager whose [Config.Retry] is zero: three
// attempts in all, waits from 10ms doubling up to 500ms, with ±50% jitter. Three attempts
// resolve the usual pair of conflicting transactions (the loser's second attempt runs
// after the winner's commit) while bounding the extra load under heavy contention;
// raise MaxAttempts for workloads that conflict more.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:         3,
		InitialInterval:     10 * time.Millisecond,
		MaxInterval:         500 * time.Millisecond,
		Multiplier:          2,
		RandomizationFactor: 0.5,
	}
}

// validate appends the policy's problems, each prefixed with path, to errs.
func (p RetryPolicy) validate(path string, errs []error) []error {
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("%s.max_attempts: must not be negative, got %d (use 1 to disable retries)", path, p.MaxAttempts))
	}
	if p.InitialInterval < 0 {
		errs = append(errs, fmt.Errorf("%s.initial_interval: must not be negative, got %s", path, p.InitialInterval))
	}
	if p.MaxInterval < 0 {
		errs = append(errs, fmt.Errorf("%s.max_interval: must not be negative, got %s", path, p.MaxInterval))
	}
	if p.InitialInterval > 0 && p.MaxInterval > 0 && p.MaxInterval < p.InitialInterval {
		errs = append(errs, fmt.Errorf("%s.max_interval: must be at least initial_interval (%s), got %s", path, p.InitialInterval, p.MaxInterval))
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("%s.multiplier: must be at least 1, got %g", path, p.Multiplier))
	}
	if p.RandomizationFactor > 1 {
		errs = append(errs, fmt.Errorf("%s.randomization_factor: must be at most 1, got %g", path, p.RandomizationFactor))
	}
	return errs
}

// withDefaults returns p with its zero fields taken from d.
func (p RetryPolicy) withDefaults(d RetryPolicy) RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = d.InitialInterval
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = d.MaxInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	if p.RandomizationFactor == 0 {
		p.RandomizationFactor = d.RandomizationFactor
	}
	return p
}

// backOff returns the exponential back-off of the policy.
func (p RetryPolicy) backOff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		RandomizationFactor: max(p.RandomizationFactor, 0),
		Multiplier:          p.Multiplier,
		MaxInterval:         max(p.MaxInterval, p.InitialInterval),
		MaxElapsedTime:      0, // bounded by MaxAttempts and the context instead
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	return b
}

// Config configures a [Manager]. Its zero value is valid.
type Config struct {
	// Logger receives the failures of commit and rollback hooks and the retries. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Retry is the default retry policy of transactions begun by the Manager; zero
	// fields take the values of [DefaultRetryPolicy]. [WithRetry] overrides it per call.
	Retry RetryPolicy
	// RollbackTimeout bounds a ROLLBACK sent after the context ended (cancelled or past
	// its deadline), which is sent on a fresh context. Zero means 5 seconds.
	RollbackTimeout time.Duration
	// CommitResolveTimeout bounds how long Do waits to learn from the server whether a
	// transaction committed when the connection failed after COMMIT was sent (the
	// server may be restarting meanwhile); the caller's context bounds it too. When
	// it passes, Do returns an error matching ErrCommitOutcomeUnknown. Zero means 10
	// seconds.
	CommitResolveTimeout time.Duration
	// Observer watches the scopes with a transaction (traces, metrics); nil
	// observes nothing, at no cost.
	Observer Observer
}

// Validate reports every problem of the configuration at once, joined; nil when it is
// valid.
func (c Config) Validate() error {
	errs := c.Retry.validate("retry", nil)
	if c.CommitResolveTimeout < 0 {
		errs = append(errs, fmt.Errorf("commit_resolve_timeout: must not be negative, got %s", c.CommitResolveTimeout))
	}
	if c.RollbackTimeout < 0 {
		errs = append(errs, fmt.Errorf("rollback_timeout: must not be negative, got %s", c.RollbackTimeout))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("txmanager: invalid config: %w", errors.Join(errs...))
}

// Option configures one call of [Manager.Do] or [Manager.Begin]. Build options with
// this package's functions ([Nested], [WithIsolation], ...). Isolation, read-only,
// deferrable, timeout and retry options apply only when the call begins a new
// transaction; when it joins one (or opens a savepoint in one) they are ignored, except
// that an isolation level different from the transaction's is an error
// ([ErrIncompatibleTransaction]).
type Option struct {
	kind  optionKind
	n     int64
	s     string
	retry *RetryPolicy
}

type optionKind uint8

const (
	optNone optionKind = iota
	optPropagation
	optIsolation
	optReadOnly
	optDeferrable
	optTimeout
	optRetry
	optName
	optJoinAsNested
)

// Nested runs the scope in a savepoint of the context's transaction (PropagationNested).
func Nested() Option { return Option{kind: optPropagation, n: int64(PropagationNested)} }

// RequiresNew runs the scope in a new transaction on another connection
// (PropagationRequiresNew).
func RequiresNew() Option { return Option{kind: optPropagation, n: int64(PropagationRequiresNew)} }

// Supports joins the context's transaction or runs without one (PropagationSupports).
func Supports() Option { return Option{kind: optPropagation, n: int64(PropagationSupports)} }

// Mandatory joins the context's transaction and fails without one
// (PropagationMandatory).
func Mandatory() Option { return Option{kind: optPropagation, n: int64(PropagationMandatory)} }

// NotSupported runs the scope without a transaction, suspending the context's
// (PropagationNotSupported).
func NotSupported() Option {
	return Option{kind: optPropagation, n: int64(PropagationNotSupported)}
}

// Never runs the scope without a transaction and fails inside one (PropagationNever).
func Never() Option { return Option{kind: optPropagation, n: int64(PropagationNever)} }

// WithPropagation sets the propagation; [PropagationRequired] is the default.
func WithPropagation(p Propagation) Option { return Option{kind: optPropagation, n: int64(p)} }

// WithIsolation sets the isolation level of a transaction the call begins: one of
// pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted. The
// server's default_transaction_isolation applies without it.
func WithIsolation(level pgx.TxIsoLevel) Option { return Option{kind: optIsolation, s: string(level)} }

// ReadOnly begins the transaction READ ONLY: a write fails with SQLSTATE 25006.
func ReadOnly() Option { return Option{kind: optReadOnly} }

// Deferrable begins the transaction DEFERRABLE (meaningful for SERIALIZABLE READ ONLY).
func Deferrable() Option { return Option{kind: optDeferrable} }

// WithTimeout bounds each attempt of a transaction the call begins: fn's context gets
// the deadline, and when it passes the transaction rolls back and Do returns an error
// wrapping context.DeadlineExceeded.
func WithTimeout(d time.Duration) Option { return Option{kind: optTimeout, n: int64(d)} }

// WithRetry sets the retry policy of a transaction the call begins; its zero fields take
// the Manager's values.
func WithRetry(p RetryPolicy) Option { return Option{kind: optRetry, retry: &p} }

// WithName names the transaction in logs (and traces).
func WithName(name string) Option { return Option{kind: optName, s: name} }

// JoinAsNested makes a transaction the call begins run each scope opened at its top
// level as a savepoint scope of its own (PropagationNested), when that scope would
// otherwise join it (Required, Supports, Mandatory; also [Manager.Begin] and so ent's
// client.Tx). Each such scope then behaves as it would as an outermost transaction: its
// failure rolls back only its own work and events (it returns its error; it does not
// make the transaction rollback-only), and its success keeps them in the transaction.
// Scopes opened inside those scopes join them as usual.
//
// It is meant for a test that wraps code written to run its own transactions in one
// transaction it rolls back at the end (see package uowtest). RequiresNew and
// NotSupported scopes still run outside the transaction, and Never fails in it.
func JoinAsNested() Option { return Option{kind: optJoinAsNested} }

// options is the result of applying Options.
type options struct {
	prop       Propagation
	iso        pgx.TxIsoLevel
	readOnly   bool
	deferrable bool
	timeout    time.Duration
	retry      *RetryPolicy
	name       string
	// joinAsNested: scopes joining the new transaction at its top level get savepoints.
	joinAsNested bool
}

// apply applies opts to o and reports the first invalid one.
func (o *options) apply(opts []Option) error {
	for _, opt := range opts {
		switch opt.kind {
		case optNone:
		case optPropagation:
			p := Propagation(opt.n)
			if p < PropagationRequired || p > PropagationNever {
				return fmt.Errorf("txmanager: unknown propagation %d: use one of the Propagation constants", opt.n)
			}
			o.prop = p
		case optIsolation:
			lvl := pgx.TxIsoLevel(opt.s)
			if isoIndex(lvl) < 0 {
				return fmt.Errorf("txmanager: unknown isolation level %q: use pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted or pgx.ReadUncommitted", opt.s)
			}
			o.iso = lvl
		case optReadOnly:
			o.readOnly = true
		case optDeferrable:
			o.deferrable = true
		case optTimeout:
			if opt.n < 0 {
				return fmt.Errorf("txmanager: negative timeout %s", time.Duration(opt.n))
			}
			o.timeout = time.Duration(opt.n)
		case optRetry:
			if errs := opt.retry.validate("retry", nil); len(errs) > 0 {
				return fmt.Errorf("txmanager: invalid retry policy: %w", errors.Join(errs...))
			}
			o.retry = opt.retry
		case optName:
			o.name = opt.s
		case optJoinAsNested:
			o.joinAsNested = true
		}
	}
	return nil
}

// isoLevels are the isolation levels accepted, unset first.
var isoLevels = [...]pgx.TxIsoLevel{"", pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted}

func isoIndex(l pgx.TxIsoLevel) int {
	for i, v := range isoLevels {
		if v == l {
			return i
		}
	}
	return -1
}

// beginSQLs holds the BEGIN statement of every option combination, so that beginning a
// transaction builds no string: [isolation][read only][deferrable].
var beginSQLs = func() (s [len(isoLevels)][2][2]string) {
	for i, lvl := range isoLevels {
		for ro := range 2 {
			for d := range 2 {
				q := "begin"
				if lvl != "" {
					q += " isolation level " + string(lvl)
				}
				if ro == 1 {
					q += " read only"
				}
				if d == 1 {
					q += " deferrable"
				}
				s[i][ro][d] = q
			}
		}
	}
	return s
}()

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// beginSQL returns the BEGIN statement for o; o.iso has been validated.
func (o *options) beginSQL() string {
	return beginSQLs[isoIndex(o.iso)][b2i(o.readOnly)][b2i(o.deferrable)]
}
