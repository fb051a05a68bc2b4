package txmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A COMMIT whose answer is lost may or may not have committed. To tell which, the
// Manager learns the transaction's id before COMMIT, without a round trip of its own:
// the first statement that may write carries xidSQL in its round trip (as one more
// query of its pipeline), until the transaction has an id. Read-only statements never
// carry it, so read-only transactions pay nothing and are never given an id. When a
// COMMIT's answer is lost, the Manager asks the server, on a fresh connection, what
// became of that id (txid_status).

// xidSQL returns the transaction's id, or NULL while it has none (it wrote nothing yet),
// and when the server started; it never assigns an id. A server restarted after a crash
// may hand out again the ids that never reached its log, so an id's status is asked only
// of the same server in the same era (see statusAfterRestart).
const xidSQL = "select txid_current_if_assigned(), pg_postmaster_start_time()"

// wantXID reports whether a statement should carry xidSQL.
func (st *txState) wantXID(sql string) bool { return st.xid == 0 && mayWrite(sql) }

// wantXIDBatch reports whether a batch should carry xidSQL.
func (st *txState) wantXIDBatch(b *pgx.Batch) bool {
	if st.xid != 0 {
		return false
	}
	for _, qq := range b.QueuedQueries {
		if mayWrite(qq.SQL) {
			return true
		}
	}
	return false
}

// xidQuery returns the query that records the transaction's id when its result is read
// (a batch's Close reads it). Its failure is not the statement's: it is ignored, and the
// id stays unknown.
func (st *txState) xidQuery() pgx.QueuedQuery {
	qq := pgx.QueuedQuery{SQL: xidSQL}
	if st.xidFn == nil {
		st.xidFn = func(row pgx.Row) error {
			var id *int64
			var era time.Time
			if err := row.Scan(&id, &era); err == nil && id != nil {
				st.xid, st.xidEra = *id, era
			}
			return nil
		}
	}
	qq.QueryRow(st.xidFn)
	return qq
}

// readOnlyWords are the first words of statements that never give a transaction an id.
var readOnlyWords = [...]string{
	"select", "values", "show", "table", "explain", "set", "reset", "savepoint", "release",
	"rollback", "begin", "start", "commit", "end", "declare", "fetch", "move", "close",
	"listen", "unlisten", "deallocate", "discard", "prepare",
}

// mayWrite reports whether a statement may write (and so give the transaction an id):
// every statement but those that start with a read-only word. A SELECT that calls a
// function that writes is missed; its transaction's commit outcome, if lost, is then
// reported unknown.
func mayWrite(sql string) bool {
	w := firstWord(sql)
	if w == "" {
		return false
	}
	for _, r := range readOnlyWords {
		if len(w) == len(r) && asciiEqualFold(w, r) {
			return false
		}
	}
	return true
}

// firstWord returns the first keyword of sql, after blanks, parentheses and comments.
func firstWord(sql string) string {
	i := 0
	for i < len(sql) {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := i + 2
			for end+1 < len(sql) && (sql[end] != '*' || sql[end+1] != '/') {
				end++
			}
			i = end + 2
		default:
			j := i
			for j < len(sql) && (sql[j]|0x20 >= 'a' && sql[j]|0x20 <= 'z') {
				j++
			}
			return sql[i:j]
		}
	}
	return ""
}

func asciiEqualFold(a, b string) bool {
	for i := range len(a) {
		if a[i]|0x20 != b[i]|0x20 {
			return false
		}
	}
	return true
}

// commitOutcome is what a failed COMMIT round trip says about the transaction.
type commitOutcome uint8

const (
	outcomeRolledBack commitOutcome = iota // the server rolled it back, or never got COMMIT
	outcomeUnknown                         // COMMIT may have reached the server
)

// classifyCommitFailure tells what a failure of the COMMIT round trip means. atCommit
// says whether err is COMMIT's own result (or came after it was sent), rather than the
// result of a statement sent before it in the same round trip.
func classifyCommitFailure(err error, atCommit bool) commitOutcome {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// An ERROR answering COMMIT or a statement before it: the server rolled back.
		// A FATAL or PANIC answering COMMIT (the server is shutting down, or crashed)
		// may come after the commit was made durable.
		if !atCommit || pgErr.Severity == "ERROR" {
			return outcomeRolledBack
		}
		return outcomeUnknown
	}
	// pgconn.SafeToRetry cannot tell: pgx reports "conn closed", safe to retry, for a
	// simple-protocol COMMIT whose answer was lost after the server committed. Only a
	// connection closed before COMMIT was sent is sure (see commit).
	return outcomeUnknown
}

// lostCommit handles a COMMIT round trip that failed with err after COMMIT may have
// reached the server: it asks the server what became of the transaction, unless it is
// read-only (nothing to resolve: see below). It returns
// (true, nil) when it committed; an ordinary error when it rolled back (the transaction
// may then be retried as after a broken connection); a *CommitOutcomeError otherwise.
// It releases the connection (broken, the pool discards it) first.
func (st *txState) lostCommit(ctx context.Context, cause error) (committed bool, err error) {
	pid := uint32(0)
	var server net.Addr
	if st.conn != nil {
		pc := st.conn.Conn().PgConn()
		pid = pc.PID()
		if nc := pc.Conn(); nc != nil {
			server = nc.RemoteAddr()
		}
		st.destroyConn(ctx)
	}
	if st.readOnly && st.failErr == nil && st.iso != pgx.Serializable {
		// A READ ONLY transaction wrote nothing, so whether it committed changes nothing,
		// and with every statement successful (and no SERIALIZABLE check at COMMIT) its
		// COMMIT had nothing to fail on: fn's reads stand. Nothing to ask the server.
		st.m.logger.LogAttrs(ctx, slog.LevelWarn, "txmanager: the connection failed after COMMIT of a read-only transaction, which wrote nothing; it is reported committed",
			attrTx(st.name), attrErr(cause))
		return true, nil
	}
	oe := &CommitOutcomeError{TxID: st.xid, Err: cause}
	cc, pinErr := sameServer(st.m.pool.Config().ConnConfig, server)
	switch {
	case st.xid == 0:
		oe.Resolve = errors.New("the transaction's id was not known: no statement that writes ran before COMMIT")
		return false, oe
	case ctx.Err() != nil:
		oe.Resolve = fmt.Errorf("the context ended before the server could be asked: %w", context.Cause(ctx))
		return false, oe
	case pinErr != nil:
		oe.Resolve = pinErr
		return false, oe
	}
	start := time.Now()
	committed, err = st.m.xactStatus(ctx, cc, st.xid, st.xidEra, pid, st.m.failedOver(st.m.pool.Config().ConnConfig, server))
	if err != nil {
		oe.Resolve = err
		return false, oe
	}
	if committed {
		st.m.logger.LogAttrs(ctx, slog.LevelWarn, "txmanager: the connection failed after COMMIT; the server reports the transaction committed",
			attrTx(st.name), slog.Int64("txid", st.xid), slog.Duration("resolved_in", time.Since(start)), attrErr(cause))
		return true, nil
	}
	st.connLost = true
	return false, fmt.Errorf("txmanager: commit: the connection failed after COMMIT was sent, and the server reports the transaction (id %d) rolled back: %w", st.xid, cause)
}

// xactStatus asks the server, on fresh connections, whether transaction xid committed
// (true) or rolled back (false), waiting while it is still in progress and while the
// server cannot be reached, until ctx ends or Config.CommitResolveTimeout passes. A
// backend still running the transaction after its client left (pid, when known) is
// terminated, which settles it. While the server cannot be reached, failedOver (nil:
// never) is asked, at most once a second, whether another server has taken its place;
// then waiting is pointless and xactStatus gives up at once.
func (m *Manager) xactStatus(ctx context.Context, cc *pgx.ConnConfig, xid int64, era time.Time, pid uint32, failedOver func(context.Context) (string, bool)) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.resolveTimeout)
	defer cancel()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 10 * time.Millisecond
	bo.MaxInterval = 500 * time.Millisecond
	bo.MaxElapsedTime = 0
	bo.Reset()
	var last error
	var nextCheck time.Time
	for {
		status, err := m.askStatus(ctx, cc, xid, era, pid)
		var connectErr *pgconn.ConnectError
		if errors.As(err, &connectErr) && failedOver != nil && !time.Now().Before(nextCheck) {
			nextCheck = time.Now().Add(time.Second)
			if addr, ok := failedOver(ctx); ok {
				return false, fmt.Errorf("the server transaction %d ran on cannot be reached (%w) and another server, at %s, now accepts writes: "+
					"after a failover only the old server could tell, and waiting for it is pointless", xid, err, addr)
			}
		}
		switch {
		case err != nil:
			last = err
		case status == "committed":
			return true, nil
		case status == "aborted":
			return false, nil
		case status == "":
			return false, fmt.Errorf("the server no longer knows transaction %d", xid)
		case status == statusReused:
			return false, fmt.Errorf("the server restarted since transaction %d ran and reports that id committed or in progress, which may be another transaction's: after a crash a server may give an id that never reached its log again", xid)
		default:
			last = fmt.Errorf("transaction %d is still %s on the server", xid, status)
		}
		if !sleep(ctx, bo.NextBackOff()) {
			return false, fmt.Errorf("gave up asking the server (%w): %w", context.Cause(ctx), last)
		}
	}
}

// failedOver returns, for a pool configured with several hosts (all) whose transaction
// ran on the server at addr, the check xactStatus makes while that server cannot be
// reached: a fresh connection made as the pool makes them (same hosts, same
// target_session_attrs) that lands on a server at another address means the pool's
// new transactions go there now — the transaction's server was failed over. It returns
// nil, no check, for a single host (a restart brings the same server back, which can
// then tell) and when addr is not a TCP address.
func (m *Manager) failedOver(all *pgx.ConnConfig, addr net.Addr) func(context.Context) (string, bool) {
	tcp, ok := addr.(*net.TCPAddr)
	if len(all.Fallbacks) == 0 || !ok {
		return nil
	}
	return func(ctx context.Context) (string, bool) {
		conn, err := pgx.ConnectConfig(ctx, all)
		if err != nil {
			return "", false
		}
		defer closeConn(ctx, conn)
		now, ok := conn.PgConn().Conn().RemoteAddr().(*net.TCPAddr)
		if !ok || (now.IP.Equal(tcp.IP) && now.Port == tcp.Port) {
			return "", false
		}
		return now.String(), true
	}
}

// sameServer returns the configuration that reaches the server a transaction ran on,
// whose connection reached addr. Transaction ids belong to one server's history: after
// a failover, the promoted standby hands out again the ids of the transactions it never
// received, so asking it about one of those could report the commit of another
// transaction. With several hosts configured, the question goes to the host the
// connection reached only; when that host is not known, the outcome cannot be asked.
func sameServer(cc *pgx.ConnConfig, addr net.Addr) (*pgx.ConnConfig, error) {
	if len(cc.Fallbacks) == 0 {
		return cc, nil
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("several hosts are configured and the one the transaction ran on is not known (connection address %v)", addr)
	}
	ip, port := tcp.IP.String(), uint16(tcp.Port)
	// The configured entries for that address (sslmode=prefer gives two per host: TLS,
	// then plain), each with its TLS settings, in order.
	var same []*pgconn.FallbackConfig
	for _, fb := range append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}, cc.Fallbacks...) {
		if fb.Port == port && (fb.Host == ip || net.ParseIP(fb.Host) == nil) {
			same = append(same, &pgconn.FallbackConfig{Host: ip, Port: port, TLSConfig: fb.TLSConfig})
		}
	}
	if len(same) == 0 {
		same = append(same, &pgconn.FallbackConfig{Host: ip, Port: port})
	}
	pinned := cc.Copy()
	pinned.Host, pinned.Port, pinned.TLSConfig = same[0].Host, same[0].Port, same[0].TLSConfig
	pinned.Fallbacks = same[1:]
	return pinned, nil
}

// statusReused is what askStatus returns when the server restarted since the
// transaction ran and reports its id committed or in progress: that may be another
// transaction's, which got the id again after the crash.
const statusReused = "reused"

// closeConn closes a connection the resolver opened, waiting at most a second for the
// server, even when ctx has ended.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}

// askStatus connects and returns txid_status(xid); when the transaction is still in
// progress it terminates the backend running it (pid), if that backend still runs it.
// era is when the server that gave xid started (zero: unknown). After a restart an
// "aborted" stays sure (had the transaction committed, its id would be in the log and
// never handed out again), while "committed" and "in progress" may be another
// transaction's (statusReused).
func (m *Manager) askStatus(ctx context.Context, cc *pgx.ConnConfig, xid int64, era time.Time, pid uint32) (string, error) {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return "", err
	}
	defer closeConn(ctx, conn)
	var status *string
	var started time.Time
	if err := conn.QueryRow(ctx, "select txid_status($1), pg_postmaster_start_time()", xid).Scan(&status, &started); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22023" && strings.Contains(pgErr.Message, "in the future") {
			// The server never made the id durable: it crashed (or failed over) before
			// the transaction could commit, so it did not.
			return "aborted", nil
		}
		return "", err
	}
	if status == nil {
		return "", nil
	}
	if !era.IsZero() && !started.Equal(era) && *status != "aborted" {
		return statusReused, nil
	}
	if *status == "in progress" && pid != 0 {
		_, err := conn.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
			where pid = $1 and backend_xid is not null and backend_xid::text::bigint = $2 % 4294967296`, int32(pid), xid)
		if err != nil {
			return "", err
		}
	}
	return *status, nil
}
