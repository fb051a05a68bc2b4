// Package pgserver finds or starts a PostgreSQL server for development, examples and
// tests.
//
// [Find] looks, in order, for: the DATABASE_URL environment variable (the server it
// names must answer); a server on 127.0.0.1:5432 that lets user postgres in without a
// password; local PostgreSQL binaries (initdb and postgres, on PATH or under
// /usr/lib/postgresql/*/bin), which it starts with [StartLocal]; Docker (postgres:15),
// through dockertest. When none of these gives a server, it returns an error matching
// [ErrNoServer] that says why each failed and how to get a server. Options skip steps
// ([SkipEnv], [SkipLocalhost], [SkipLocal], [SkipDocker]) or tune them ([WithBinDirs],
// [WithPort], [WithUser], [WithSetting], [WithLogger]).
//
// [StartLocal] always starts an ephemeral server from the local binaries: in a new
// temporary directory (data, unix socket, log), on 127.0.0.1 and a free port (or the
// one given with [WithPort]; [FreePort] picks one ahead), with trust authentication and
// fsync off. As root, it runs the server as an unprivileged user (postgres, else
// nobody). The server is a child of the calling process and dies with it. Such a
// [Server] can be stopped and started again ([Server.Stop], [Server.Start]), for tests
// of outages and late servers; [Server.Close] stops it and removes its directory.
//
// [Server.StartStandby] adds a streaming hot standby of such a server (pg_basebackup
// -R), asynchronous or, with [Synchronous], synchronous; [Server.Promote] fails over to
// it and [Server.SetSetting] changes a running server's settings, such as a standby's
// recovery_min_apply_delay.
//
//	srv, err := pgserver.Find(ctx)
//	if err != nil {
//		return err // says how to get a server
//	}
//	defer srv.Close()
//	conn, err := pgx.Connect(ctx, srv.URL)
package pgserver
