package txmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ctxKey is the context key under which a *scope is stored. A nil *scope under it hides
// the transaction of an outer context (NotSupported, hooks).
type ctxKey struct{}

// spState is where a savepoint scope's SAVEPOINT stands.
type spState uint8

const (
	spNone        spState = iota // the root scope: no savepoint
	spQueued                     // queued in the pending prefix, not sent yet
	spEstablished                // executed successfully
	spFailed                     // sent but failed or skipped: no savepoint exists
)

// scope is one level of a transaction: the root (the transaction itself) or a savepoint.
// Joined scopes (Required inside a transaction) do not get one: they use the scope of
// their context. The scope is also the context fn receives, which saves allocating a
// context per Do; its Value returns the scope itself under ctxKey.
type scope struct {
	context.Context

	st    *txState
	level int // 0 for the root, 1.. for savepoints: the savepoint is uno_sp_<level>
	sp    spState
	// All fields below are guarded by st.mu.
	closed       bool
	rollbackOnly bool
	cause        error // the error of the joined scope that made it rollback-only
	// Marks into the transaction's hook and staged lists where this scope's entries start.
	commitMark, rollbackMark, stageMark int
}

// Value returns the scope itself for ctxKey and defers to the parent context otherwise.
func (s *scope) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return s
	}
	return s.Context.Value(key)
}

// String describes the context for debugging.
func (s *scope) String() string {
	if s.level == 0 {
		return "txmanager transaction context"
	}
	return "txmanager savepoint context uno_sp_" + strconv.Itoa(s.level)
}

// scopeFrom returns the scope ctx carries, or nil.
func scopeFrom(ctx context.Context) *scope {
	if s, ok := ctx.(*scope); ok {
		return s
	}
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(ctxKey{}).(*scope)
	return s
}

// pendKind is the kind of a pending control statement.
type pendKind uint8

const (
	pendBegin pendKind = iota
	pendSavepoint
	pendRelease
)

// pending is a control statement waiting to be sent with the next statement.
type pending struct {
	sql   string
	sc    *scope // the savepoint's scope, for pendSavepoint
	level int32
	kind  pendKind
}

// hook is a commit or rollback callback.
type hook = func(ctx context.Context) error

// stagedItem is one item given to Stage.
type stagedItem struct {
	w    CommitWriter
	item any
}

// openResult is the rows or batch results of the transaction that are still open.
type openResult interface {
	closeLocked() error
}

// txState is one transaction: its connection (acquired with the first statement), the
// control statements still to send, its scopes, hooks and staged items. Only the goroutine
// that runs it uses it; mu turns any concurrent use into ErrTxBusy instead of a data race.
type txState struct {
	mu   sync.Mutex
	done atomic.Bool // set under mu when the transaction has ended

	m        *Manager
	conn     *pgxpool.Conn
	beginSQL string
	iso      pgx.TxIsoLevel
	name     string

	begun     bool  // BEGIN was executed
	broken    error // the transaction cannot go on (BEGIN or ROLLBACK TO failed)
	failErr   error // the first statement error since the last good ROLLBACK TO
	retryable bool  // a statement or COMMIT failed with 40001 or 40P01

	open openResult // rows or batch results that keep the connection busy

	pend          []pending // control statements to send with the next statement
	scopes        []*scope  // the open scopes, root first
	commitHooks   []hook
	rollbackHooks []hook
	staged        []stagedItem

	// Reused to send the pending prefix with a statement.
	batch pgx.Batch
	qq    []pgx.QueuedQuery

	root     scope
	pendBuf  [4]pending
	scopeBuf [4]*scope
	qqBuf    [3]pgx.QueuedQuery // BEGIN or RELEASE+SAVEPOINT, and a statement
	qqPtrBuf [3]*pgx.QueuedQuery
}

// newState returns a transaction that begins with o's BEGIN; ctx is the context of its
// root scope.
func (m *Manager) newState(ctx context.Context, o *options) *txState {
	st := &txState{m: m, beginSQL: o.beginSQL(), iso: o.iso, name: o.name}
	st.root.Context = ctx
	st.root.st = st
	st.scopes = append(st.scopeBuf[:0], &st.root)
	st.pend = append(st.pendBuf[:0], pending{sql: st.beginSQL, kind: pendBegin})
	st.qq = st.qqBuf[:0]
	st.batch.QueuedQueries = st.qqPtrBuf[:0]
	return st
}

// lock takes the state for an operation of sc on the caller's goroutine.
func (st *txState) lock(sc *scope) error {
	if !st.mu.TryLock() {
		return ErrTxBusy
	}
	if st.done.Load() || sc.closed {
		st.mu.Unlock()
		return ErrTxDone
	}
	return nil
}

// enter is lock for an operation that needs the connection: it also fails while rows or
// batch results are open.
func (st *txState) enter(sc *scope) error {
	if err := st.lock(sc); err != nil {
		return err
	}
	if st.open != nil {
		st.mu.Unlock()
		return ErrTxBusy
	}
	return nil
}

// top returns the innermost open scope.
func (st *txState) top() *scope { return st.scopes[len(st.scopes)-1] }

// connect acquires the connection on the first statement.
func (st *txState) connect(ctx context.Context) error {
	if st.broken != nil {
		return st.broken
	}
	if st.conn != nil {
		return nil
	}
	c, err := st.m.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("txmanager: acquire a connection for the transaction: %w", err)
	}
	st.conn = c
	return nil
}

// noteErr records a statement error: the first one explains a COMMIT that rolled back,
// and a serialization failure or deadlock makes the transaction retryable.
func (st *txState) noteErr(err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return
	}
	if st.failErr == nil {
		st.failErr = err
	}
	if pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected {
		st.retryable = true
	}
}

// closeOpen closes rows or batch results left open, so that the connection can be used.
func (st *txState) closeOpen() error {
	if st.open == nil {
		return nil
	}
	return st.open.closeLocked()
}

// prefixBatch fills st.batch with the pending control statements, followed by sql when
// withStmt is set.
func (st *txState) prefixBatch(sql string, args []any, withStmt bool) *pgx.Batch {
	n := len(st.pend)
	total := n
	if withStmt {
		total++
	}
	if cap(st.qq) < total {
		st.qq = make([]pgx.QueuedQuery, total)
	}
	st.qq = st.qq[:total]
	ptrs := st.batch.QueuedQueries[:0]
	if cap(ptrs) < total {
		ptrs = make([]*pgx.QueuedQuery, 0, total)
	}
	for i := range st.pend {
		// Assigning a whole value also clears the statement description pgx cached in it.
		st.qq[i] = pgx.QueuedQuery{SQL: st.pend[i].sql}
		ptrs = append(ptrs, &st.qq[i])
	}
	if withStmt {
		st.qq[n] = pgx.QueuedQuery{SQL: sql, Arguments: args}
		ptrs = append(ptrs, &st.qq[n])
	}
	st.batch.QueuedQueries = ptrs
	return &st.batch
}

// sendPrefixed sends the pending control statements and sql in one batch (one round
// trip) and reads the control statements' results; br is then at sql's result.
func (st *txState) sendPrefixed(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	br := st.conn.SendBatch(ctx, st.prefixBatch(sql, args, true))
	if err := st.readPrefix(br); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

// flushPrefix sends the pending control statements alone (before COPY).
func (st *txState) flushPrefix(ctx context.Context) error {
	br := st.conn.SendBatch(ctx, st.prefixBatch("", nil, false))
	err := st.readPrefix(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		st.noteErr(cerr)
		err = cerr
	}
	return err
}

// readPrefix reads the results of the pending control statements at the head of br.
func (st *txState) readPrefix(br pgx.BatchResults) error {
	for i := range st.pend {
		if _, err := br.Exec(); err != nil {
			return st.prefixFailed(i, err)
		}
		switch p := &st.pend[i]; p.kind {
		case pendBegin:
			st.begun = true
		case pendSavepoint:
			p.sc.sp = spEstablished
		}
	}
	st.pend = st.pend[:0]
	return nil
}

// prefixFailed handles the failure of pending control statement i.
func (st *txState) prefixFailed(i int, err error) error {
	st.noteErr(err)
	var prep pgx.ErrPreprocessingBatch
	if i == 0 && (pgconn.SafeToRetry(err) || errors.As(err, &prep)) {
		// Nothing of the batch was executed: it was not sent, or one of its statements
		// could not be prepared (typically the caller's) or its arguments encoded.
		var pgErr *pgconn.PgError
		if !st.begun || !errors.As(err, &pgErr) {
			// Nothing happened on the server, or outside a transaction: the prefix stays
			// pending and the error is the statement's.
			return err
		}
		// The server rejected a statement while preparing it, which aborted the
		// transaction before the pending control statements ran. A pending SAVEPOINT can
		// then never be established, so its scope's failure could not be contained:
		// the transaction must roll back. (route avoids this by sending the prefix
		// first for a statement that was never seen parsing.)
		for _, p := range st.pend {
			if p.kind == pendSavepoint {
				p.sc.sp = spFailed
				st.broken = fmt.Errorf("txmanager: a statement failed to prepare before its scope's savepoint was established, the transaction cannot go on: %w", err)
			}
		}
		clear(st.pend)
		st.pend = st.pend[:0]
		return err
	}
	// Statements before i succeeded; i failed; the server skipped the rest.
	p := st.pend[i]
	for j := i; j < len(st.pend); j++ {
		if q := st.pend[j]; q.kind == pendSavepoint {
			q.sc.sp = spFailed
		}
	}
	clear(st.pend)
	st.pend = st.pend[:0]
	if p.kind == pendBegin {
		st.broken = fmt.Errorf("txmanager: BEGIN failed, the transaction cannot run statements: %w", err)
		return st.broken
	}
	return fmt.Errorf("txmanager: %s: %w", p.sql, err)
}

// route is how a statement is sent.
type route uint8

const (
	routeDirect   route = iota // nothing pending: straight to the connection
	routePrefixed              // the pending control statements travel with it
	routeFlushed               // they were sent first: remember the statement once it succeeds
)

// route acquires the connection and decides how a statement (sql, or b's statements)
// is sent. The pending control statements travel with it, except when a SAVEPOINT is
// pending in a begun transaction and the statement never succeeded before: if it then
// failed to parse, it would abort the transaction before the SAVEPOINT ran, and its scope
// could not be rolled back alone. Such a statement gets the prefix sent first (one more
// round trip, once per distinct statement and Manager).
func (st *txState) route(ctx context.Context, sql string, b *pgx.Batch) (route, error) {
	if err := st.connect(ctx); err != nil {
		return routeDirect, err
	}
	if len(st.pend) == 0 {
		return routeDirect, nil
	}
	if !st.begun || !st.savepointPending() || st.m.knownAll(sql, b) {
		return routePrefixed, nil
	}
	if err := st.flushPrefix(ctx); err != nil {
		return routeDirect, err
	}
	return routeFlushed, nil
}

func (st *txState) savepointPending() bool {
	for i := range st.pend {
		if st.pend[i].kind == pendSavepoint {
			return true
		}
	}
	return false
}

// maxKnown bounds the statements a Manager remembers as having succeeded.
const maxKnown = 4096

// knownAll reports whether sql (or every statement of b, when b is not nil) succeeded
// before.
func (m *Manager) knownAll(sql string, b *pgx.Batch) bool {
	if b == nil {
		_, ok := m.known.Load(sql)
		return ok
	}
	for _, qq := range b.QueuedQueries {
		if _, ok := m.known.Load(qq.SQL); !ok {
			return false
		}
	}
	return true
}

// remember records that sql (or b's statements) succeeded.
func (m *Manager) remember(sql string, b *pgx.Batch) {
	if b == nil {
		m.rememberOne(sql)
		return
	}
	for _, qq := range b.QueuedQueries {
		m.rememberOne(qq.SQL)
	}
}

func (m *Manager) rememberOne(sql string) {
	if m.knownN.Load() >= maxKnown {
		return
	}
	if _, loaded := m.known.LoadOrStore(sql, struct{}{}); !loaded {
		m.knownN.Add(1)
	}
}

// Savepoint statements, precomputed for the usual depths; names are generated, never
// taken from user input.
var savepointSQLs, releaseSQLs, rollbackToSQLs = controlSQLs("savepoint uno_sp_"),
	controlSQLs("release savepoint uno_sp_"), controlSQLs("rollback to savepoint uno_sp_")

func controlSQLs(prefix string) (t [17]string) {
	for i := 1; i < len(t); i++ {
		t[i] = prefix + strconv.Itoa(i)
	}
	return t
}

func controlSQL(table *[17]string, prefix string, level int) string {
	if level < len(table) {
		return table[level]
	}
	return prefix + strconv.Itoa(level)
}

// pushSavepoint opens a savepoint scope inside the innermost scope and queues its
// SAVEPOINT; ctx is the context the scope derives from.
func (st *txState) pushSavepoint(ctx context.Context) *scope {
	level := st.top().level + 1
	sc := &scope{
		Context:      ctx,
		st:           st,
		level:        level,
		sp:           spQueued,
		commitMark:   len(st.commitHooks),
		rollbackMark: len(st.rollbackHooks),
		stageMark:    len(st.staged),
	}
	st.scopes = append(st.scopes, sc)
	st.pend = append(st.pend, pending{
		sql:   controlSQL(&savepointSQLs, "savepoint uno_sp_", level),
		kind:  pendSavepoint,
		level: int32(level),
		sc:    sc,
	})
	return sc
}

// dropQueued removes sc's SAVEPOINT, never sent, from the prefix together with what
// inner scopes queued after it.
func (st *txState) dropQueued(sc *scope) {
	for i := range st.pend {
		if st.pend[i].sc == sc {
			clear(st.pend[i:])
			st.pend = st.pend[:i]
			return
		}
	}
}

// popScope closes sc, the innermost scope.
func (st *txState) popScope(sc *scope) {
	sc.closed = true
	st.scopes[len(st.scopes)-1] = nil
	st.scopes = st.scopes[:len(st.scopes)-1]
}

// endSavepoint ends savepoint scope sc with fnErr (nil: success) and returns the scope's
// error and the rollback hooks to run. st.mu is held.
func (st *txState) endSavepoint(ctx context.Context, sc *scope, fnErr error) (error, []hook) {
	if st.top() != sc {
		return errors.New("txmanager: a scope ended before the scopes opened inside it: end (Commit or Rollback) the inner ones first"), nil
	}
	if fnErr == nil && sc.rollbackOnly {
		fnErr = fmt.Errorf("%w: %w", ErrRollbackOnly, sc.cause)
	}
	if fnErr == nil {
		switch sc.sp {
		case spQueued:
			// Nothing was sent for the scope: nothing to release.
			st.dropQueued(sc)
		case spEstablished:
			// RELEASE goes with the next statement; releasing sc also releases the
			// savepoints of inner scopes, so their pending RELEASEs are dropped. Before
			// COMMIT it is dropped too.
			st.pend = slices.DeleteFunc(st.pend, func(p pending) bool {
				return p.kind == pendRelease && int(p.level) > sc.level
			})
			st.pend = append(st.pend, pending{
				sql:   controlSQL(&releaseSQLs, "release savepoint uno_sp_", sc.level),
				kind:  pendRelease,
				level: int32(sc.level),
			})
		}
		// Hooks and staged items now belong to the parent scope.
		st.popScope(sc)
		return nil, nil
	}

	var rbErr error
	switch sc.sp {
	case spQueued:
		st.dropQueued(sc)
	case spEstablished:
		rbErr = st.rollbackTo(ctx, sc.level)
	}
	var hooks []hook
	if len(st.rollbackHooks) > sc.rollbackMark {
		hooks = slices.Clone(st.rollbackHooks[sc.rollbackMark:])
	}
	clear(st.commitHooks[sc.commitMark:])
	st.commitHooks = st.commitHooks[:sc.commitMark]
	clear(st.rollbackHooks[sc.rollbackMark:])
	st.rollbackHooks = st.rollbackHooks[:sc.rollbackMark]
	clear(st.staged[sc.stageMark:])
	st.staged = st.staged[:sc.stageMark]
	st.popScope(sc)
	if rbErr != nil {
		return fmt.Errorf("%w (and %w)", fnErr, rbErr), hooks
	}
	return fnErr, hooks
}

// rollbackTo rolls back to savepoint level now (one round trip) and queues its RELEASE.
func (st *txState) rollbackTo(ctx context.Context, level int) error {
	// Everything pending was queued by scopes inside this one, whose work is being
	// undone; sending it could even fail in an aborted transaction.
	clear(st.pend)
	st.pend = st.pend[:0]
	err := st.closeOpen()
	if err == nil {
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			ctx, cancel = st.m.cleanupContext(ctx)
			defer cancel()
		}
		_, err = st.conn.Exec(ctx, controlSQL(&rollbackToSQLs, "rollback to savepoint uno_sp_", level))
	}
	if err != nil {
		// The scope's writes may still be there: the transaction must not commit.
		st.broken = fmt.Errorf("txmanager: rolling back to a savepoint failed, the transaction cannot go on: %w", err)
		return st.broken
	}
	st.failErr = nil
	st.pend = append(st.pend, pending{
		sql:   controlSQL(&releaseSQLs, "release savepoint uno_sp_", level),
		kind:  pendRelease,
		level: int32(level),
	})
	return nil
}

// finish ends the transaction: it commits when fnErr is nil and nothing prevents it,
// else rolls back; then it returns the connection to the pool. It returns the
// transaction's error, whether it committed, and the hooks to run. opCtx is the context
// of COMMIT.
func (st *txState) finish(opCtx context.Context, fnErr error) (err error, committed bool, hooks []hook) {
	st.mu.Lock()
	defer func() {
		if st.conn != nil {
			// Foreign code (a callback of rows or a batch left open, or of a commit
			// writer) panicked: the connection's state is unknown, so it is closed, which
			// also rolls the transaction back on the server.
			st.destroyConn(opCtx)
		}
		st.root.closed = true
		st.done.Store(true)
		st.mu.Unlock()
	}()
	if st.done.Load() {
		return ErrTxDone, false, nil
	}
	if cerr := st.closeOpen(); cerr != nil && fnErr == nil {
		fnErr = cerr
	}
	if len(st.scopes) > 1 {
		for _, sc := range st.scopes[1:] {
			sc.closed = true
		}
		if fnErr == nil {
			fnErr = errors.New("txmanager: the transaction ended while scopes opened inside it were still open: end (Commit or Rollback) every Tx from Begin, innermost first")
		}
	}
	if fnErr == nil && st.root.rollbackOnly {
		fnErr = fmt.Errorf("%w: %w", ErrRollbackOnly, st.root.cause)
	}
	if fnErr == nil && st.broken != nil {
		fnErr = st.broken
	}
	if fnErr == nil {
		if cerr := st.root.Err(); cerr != nil {
			fnErr = fmt.Errorf("txmanager: the transaction's context ended before it committed, rolled back: %w", context.Cause(&st.root))
		}
	}
	if fnErr == nil {
		if fnErr = st.commit(opCtx); fnErr == nil {
			committed = true
		}
	}
	if !committed {
		if rbErr := st.rollback(opCtx); rbErr != nil {
			fnErr = fmt.Errorf("%w (and the rollback failed, the connection was closed: %w)", fnErr, rbErr)
		}
	}
	if st.conn != nil {
		st.conn.Release()
		st.conn = nil
	}
	if committed {
		return nil, true, st.commitHooks
	}
	return fnErr, false, st.rollbackHooks
}

// destroyConn closes the connection and gives it back to the pool, which destroys it.
func (st *txState) destroyConn(ctx context.Context) {
	cctx, cancel := st.m.cleanupContext(ctx)
	_ = st.conn.Conn().Close(cctx)
	cancel()
	st.conn.Release()
	st.conn = nil
}

// commit sends COMMIT, with the staged items' statements when there are some, and
// checks that it committed.
func (st *txState) commit(ctx context.Context) error {
	if len(st.staged) > 0 {
		return st.commitBatch(ctx)
	}
	if !st.begun {
		// Nothing was ever sent: there is nothing to commit.
		return nil
	}
	// Pending RELEASEs are dropped: COMMIT releases every savepoint.
	st.pend = st.pend[:0]
	tag, err := st.conn.Exec(ctx, "commit")
	if err != nil {
		st.noteErr(err)
		return fmt.Errorf("txmanager: commit: %w", err)
	}
	return st.checkCommitTag(tag)
}

// checkCommitTag turns a COMMIT answered with ROLLBACK (the transaction was aborted by
// an error someone ignored) into an error.
func (st *txState) checkCommitTag(tag pgconn.CommandTag) error {
	if tag.String() != "ROLLBACK" {
		return nil
	}
	cause := st.failErr
	if cause == nil {
		cause = pgx.ErrTxCommitRollback
	}
	return fmt.Errorf("txmanager: COMMIT rolled back: a statement of the transaction failed and its error was ignored: %w", cause)
}

// commitBatch sends [BEGIN] + the writers' statements + COMMIT in one round trip.
func (st *txState) commitBatch(ctx context.Context) error {
	if err := st.connect(ctx); err != nil {
		return err
	}
	st.pend = st.pend[:0]
	b := &pgx.Batch{}
	nPrefix := 0
	if !st.begun {
		b.Queue(st.beginSQL)
		nPrefix = 1
	}
	// Writers in the order of their first item, each with its items in order.
	var wbuf [4]CommitWriter
	writers := wbuf[:0]
	for _, s := range st.staged {
		if !slices.Contains(writers, s.w) {
			writers = append(writers, s.w)
		}
	}
	for _, w := range writers {
		var items []any
		for _, s := range st.staged {
			if s.w == w {
				items = append(items, s.item)
			}
		}
		if err := w.QueueCommit(ctx, b, items); err != nil {
			return fmt.Errorf("txmanager: a commit writer failed to queue its statements, rolled back: %w", err)
		}
	}
	nWriter := len(b.QueuedQueries) - nPrefix
	b.Queue("commit")

	br := st.conn.SendBatch(ctx, b)
	var err error
	for range nPrefix {
		if _, err = br.Exec(); err != nil {
			break
		}
		st.begun = true
	}
	var cbErr error // a writer's result callback failed; the server went on
	if err == nil {
		for _, qq := range b.QueuedQueries[nPrefix : nPrefix+nWriter] {
			if qq.Fn != nil {
				if ferr := qq.Fn(br); ferr != nil {
					var pgErr *pgconn.PgError
					if errors.As(ferr, &pgErr) {
						err = ferr
						break
					}
					if cbErr == nil {
						cbErr = ferr
					}
				}
			} else if _, err = br.Exec(); err != nil {
				break
			}
		}
	}
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		st.noteErr(err)
		return fmt.Errorf("txmanager: commit: %w", err)
	}
	if err := st.checkCommitTag(tag); err != nil {
		return err
	}
	if cbErr != nil {
		st.m.logger.LogAttrs(ctx, slog.LevelError, "txmanager: a commit writer's result callback failed after COMMIT succeeded; the transaction is committed",
			attrTx(st.name), attrErr(cbErr))
	}
	return nil
}

// rollback rolls the transaction back if the connection is in one; when that fails the
// connection is closed so that the pool destroys it instead of reusing it.
func (st *txState) rollback(ctx context.Context) error {
	clear(st.pend)
	st.pend = st.pend[:0]
	if st.conn == nil {
		return nil
	}
	pc := st.conn.Conn()
	if pc.IsClosed() {
		return nil
	}
	if st.open != nil {
		_ = st.open.closeLocked()
	}
	if pc.PgConn().TxStatus() == 'I' && !pc.PgConn().IsBusy() {
		return nil // nothing was begun on the server
	}
	rctx, cancel := st.m.cleanupContext(ctx)
	_, err := pc.Exec(rctx, "rollback")
	cancel()
	if err == nil {
		return nil
	}
	st.destroyConn(ctx)
	return fmt.Errorf("txmanager: rollback: %w", err)
}

// cleanupContext returns a context for a ROLLBACK that must run even when ctx ended.
func (m *Manager) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.rollbackTimeout)
}

// markRollbackOnly records that a scope joined to sc failed with cause.
func (sc *scope) markRollbackOnly(cause error) {
	st := sc.st
	st.mu.Lock()
	if !st.done.Load() && !sc.closed && !sc.rollbackOnly {
		sc.rollbackOnly = true
		sc.cause = cause
	}
	st.mu.Unlock()
}

// defaultRollbackTimeout bounds a cleanup ROLLBACK.
const defaultRollbackTimeout = 5 * time.Second
