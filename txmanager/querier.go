package txmanager

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The scope is the Querier of its transaction: every statement runs on the transaction's
// connection, after the control statements still pending, which travel in the same round
// trip. Without pending statements, a statement goes straight to the connection.

// Exec runs sql in the transaction.
func (s *scope) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	st := s.st
	if err := st.enter(s); err != nil {
		return pgconn.CommandTag{}, err
	}
	defer st.mu.Unlock()
	rt, err := st.route(ctx, sql, nil)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if rt == routeFlushed {
		var tag pgconn.CommandTag
		firstArgs, ok := firstRunArgs(args)
		if ok {
			tag, err = st.conn.Exec(ctx, sql, firstArgs...)
		}
		if !ok || st.retryFirstRun(ctx, err) {
			tag, err = st.conn.Exec(ctx, sql, args...)
		}
		if err != nil {
			st.noteErr(err)
		} else {
			st.m.remember(sql, nil)
		}
		return tag, err
	}
	withXID := st.wantXID(sql)
	if rt == routeDirect && !withXID {
		tag, err := st.conn.Exec(ctx, sql, args...)
		if err != nil {
			st.noteErr(err)
		}
		return tag, err
	}
	br, err := st.sendPrefixed(ctx, sql, args, withXID)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		st.noteErr(err)
	}
	return tag, err
}

// Query runs sql in the transaction. The transaction is busy until the rows are closed
// (Next returning false closes them).
func (s *scope) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r := s.query(ctx, sql, args)
	return r, r.err
}

// QueryRow runs sql in the transaction; Scan reads the first row and closes the rows.
func (s *scope) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return (*txRow)(s.query(ctx, sql, args))
}

func (s *scope) query(ctx context.Context, sql string, args []any) *txRows {
	st := s.st
	if err := st.enter(s); err != nil {
		return &txRows{st: st, err: err, closed: true}
	}
	defer st.mu.Unlock()
	rt, err := st.route(ctx, sql, nil)
	if err != nil {
		return &txRows{st: st, err: err, closed: true}
	}
	r := &txRows{st: st}
	withXID := rt != routeFlushed && st.wantXID(sql)
	switch {
	case rt == routeFlushed:
		r.remember = sql
		firstArgs, ok := firstRunArgs(args)
		if ok {
			r.rows, err = st.conn.Query(ctx, sql, firstArgs...)
		}
		if !ok || st.retryFirstRun(ctx, err) {
			if r.rows != nil {
				r.rows.Close()
			}
			r.rows, err = st.conn.Query(ctx, sql, args...)
		}
	case rt == routeDirect && !withXID:
		r.rows, err = st.conn.Query(ctx, sql, args...)
	default:
		r.br, err = st.sendPrefixed(ctx, sql, args, withXID)
		if err == nil {
			r.rows, err = r.br.Query()
		}
	}
	if err != nil {
		r.closed = true
		r.err = err
		if r.rows != nil {
			r.rows.Close()
		}
		if r.br != nil {
			_ = r.br.Close()
		}
		st.noteErr(err)
		return r
	}
	st.open = r
	return r
}

// SendBatch sends b in the transaction, after the pending control statements. The
// transaction is busy until the results are closed.
func (s *scope) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	st := s.st
	if err := st.enter(s); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	defer st.mu.Unlock()
	rt, err := st.route(ctx, "", b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	r := &txBatch{st: st}
	if rt == routeFlushed {
		r.remember = b
	}
	withXID := st.wantXIDBatch(b)
	if rt != routePrefixed && !withXID {
		r.br = st.conn.SendBatch(ctx, b)
	} else {
		full := st.prefixBatch("", nil, false, false)
		// The caller's queued queries keep their callbacks; they run on the results after
		// the prefix's, which are read here. The transaction-id query comes last; the
		// results' Close reads it.
		full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
		if withXID {
			qq := st.xidQuery()
			full.QueuedQueries = append(full.QueuedQueries, &qq)
		}
		r.br = st.conn.SendBatch(ctx, full)
		if err := st.readPrefix(r.br); err != nil {
			_ = r.br.Close()
			return pgx.FailedBatchResults(b, err)
		}
	}
	st.open = r
	return r
}

// CopyFrom copies rows into the table in the transaction. Pending control statements are
// sent first, in a round trip of their own: COPY cannot share it.
func (s *scope) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	st := s.st
	if err := st.enter(s); err != nil {
		return 0, err
	}
	defer st.mu.Unlock()
	if err := st.connect(ctx); err != nil {
		return 0, err
	}
	if len(st.pend) > 0 {
		if err := st.flushPrefix(ctx); err != nil {
			return 0, err
		}
	}
	n, err := st.conn.CopyFrom(ctx, tableName, columnNames, rowSrc)
	if err != nil {
		st.noteErr(err)
	}
	return n, err
}
