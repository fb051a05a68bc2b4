package txmanager

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

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

// prefixBatch fills st.batch with the pending control statements, followed by sql when
// withStmt is set, and by the transaction-id query when withXID is set.
func (st *txState) prefixBatch(sql string, args []any, withStmt, withXID bool) *pgx.Batch {
	n := len(st.pend)
	total := n
	if withStmt {
		total++
	}
	if withXID {
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
		n++
	}
	if withXID {
		st.qq[n] = st.xidQuery()
		ptrs = append(ptrs, &st.qq[n])
	}
	st.batch.QueuedQueries = ptrs
	return &st.batch
}

// sendPrefixed sends the pending control statements, sql and, when withXID is set, the
// transaction-id query in one batch (one round trip) and reads the control statements'
// results; br is then at sql's result, and its Close reads the transaction id.
func (st *txState) sendPrefixed(ctx context.Context, sql string, args []any, withXID bool) (pgx.BatchResults, error) {
	br := st.conn.SendBatch(ctx, st.prefixBatch(sql, args, true, withXID))
	if err := st.readPrefix(br); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

// flushPrefix sends the pending control statements alone (before COPY).
func (st *txState) flushPrefix(ctx context.Context) error {
	br := st.conn.SendBatch(ctx, st.prefixBatch("", nil, false, false))
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
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// The round trip itself failed (the context ended, the connection broke): the
		// error is the statement's, whichever result was being read, and the
		// transaction cannot go on.
		for _, q := range st.pend {
			if q.kind == pendSavepoint {
				q.sc.sp = spFailed
			}
		}
		clear(st.pend)
		st.pend = st.pend[:0]
		st.broken = fmt.Errorf("txmanager: the connection failed during a statement, the transaction cannot go on: %w", err)
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
	routeFlushed               // they were sent first (the first-run route): remember the statement once it succeeds
)

// route acquires the connection and decides how a statement (sql, or b's statements)
// is sent. The pending control statements travel with it, except when a SAVEPOINT is
// pending in a begun transaction and the statement never succeeded before: pgx would
// prepare it before the batch runs, and if it then failed to parse it would abort the
// transaction before the SAVEPOINT ran, and its scope could not be rolled back alone.
// Such a statement takes the first-run route: the prefix is sent first, then the
// statement is parsed, bound and executed in one round trip (pgx's QueryExecModeExec),
// two round trips in all, as a statement pgx has not prepared on the connection costs
// on the usual route. The Manager remembers the statements that succeeded this way
// (the least recently used of seenStatements are kept).
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

// seenStatements bounds the statements a Manager remembers as having parsed: the least
// recently used is forgotten first, and pays the first-run route again.
const seenStatements = 4096

// knownAll reports whether sql (or every statement of b, when b is not nil) succeeded
// before.
func (m *Manager) knownAll(sql string, b *pgx.Batch) bool {
	if b == nil {
		return m.seen.Contains(sql)
	}
	for _, qq := range b.QueuedQueries {
		if !m.seen.Contains(qq.SQL) {
			return false
		}
	}
	return true
}

// remember records that sql (or b's statements) succeeded.
func (m *Manager) remember(sql string, b *pgx.Batch) {
	if b == nil {
		m.seen.Add(sql)
		return
	}
	for _, qq := range b.QueuedQueries {
		m.seen.Add(qq.SQL)
	}
}

// firstRunArgs returns the arguments that run a statement on the first-run route in one
// round trip, as pgx's QueryExecModeExec does (parse, bind and execute at once, the
// arguments' types taken from their Go types), and false when the caller's arguments
// start with a pgx query option, which is then left to pgx.
func firstRunArgs(args []any) ([]any, bool) {
	if len(args) > 0 {
		switch args[0].(type) {
		case pgx.QueryExecMode, pgx.QueryRewriter, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
			return args, false
		}
	}
	return append([]any{pgx.QueryExecModeExec}, args...), true
}

// retryFirstRun reports whether a statement run on the first-run route failed before
// anything was sent (pgx could not encode an argument without knowing the parameter's
// type), so that it may run again the usual way, which prepares it first.
func (st *txState) retryFirstRun(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	return err != nil && !errors.As(err, &pgErr) && ctx.Err() == nil && !st.conn.Conn().IsClosed()
}
