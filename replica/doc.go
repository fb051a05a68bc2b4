// Package replica runs read-only transactions on streaming replicas (hot standbys) with
// a staleness bound and read-your-writes, and everything else on the primary.
//
// A [Set] holds the primary's txmanager.Manager and one pool per replica. It samples
// the primary's WAL position and each replica's replay position every
// Config.CheckInterval, in a goroutine of its own, so routing a read costs no round
// trip. [Set.Read] runs a read-only transaction on a healthy replica that has replayed
// everything the primary had written Config.MaxLag ago, else on the primary.
//
// Read-your-writes: a [Session], carried in the context ([WithSession]) or across
// requests as its [Session.Token] ([ResumeSession]), remembers the WAL position of the
// session's last commit. [Set.Do] (or [Set.Track] inside any transaction on the
// primary, a unit of work's for instance) records it; the statement that reads it is
// sent after COMMIT in COMMIT's own round trip (txmanager.AfterCommitQueuer), so a
// tracked Do costs no more round trips than an untracked one, and a Do whose context
// carries no session is not touched at all. A Read of the session then runs on a
// replica only once that replica has replayed the position, waiting for it up to
// Config.WaitTimeout, else on the primary. A read without the session may miss the
// session's own last commit: it is only as fresh as MaxLag.
//
//	set, err := replica.New(ctx, tm, []*pgxpool.Pool{standbyPool}, replica.Config{})
//	...
//	ctx = replica.WithSession(ctx, replica.NewSession())
//	err = set.Do(ctx, func(ctx context.Context) error { ... writes ... })
//	err = set.Read(ctx, func(ctx context.Context) error {
//		return tm.Querier(ctx).QueryRow(ctx, "select ...").Scan(&v) // sees the write
//	})
//
// The replicas' transactions are the primary Manager's own (txmanager.Manager.Replica):
// inside Read, code on tm — tm.Querier, sqlc's db.New(tm), an ent client over
// entdriver.New(tm), sqldriver.Open(tm) — reads in the read's transaction.
package replica
