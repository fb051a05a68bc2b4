package replica_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uno-framework/uno/replica"
	"github.com/uno-framework/uno/tests/pgtest"
	"github.com/uno-framework/uno/txmanager"
)

// A session's read sees the session's write. With no replica (or none healthy, fresh
// enough or caught up in time) the read runs on the primary.
func ExampleSet_Read() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.URL())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "create table if not exists notes (body text)"); err != nil {
		panic(err)
	}
	tm, err := txmanager.New(pool, txmanager.Config{})
	if err != nil {
		panic(err)
	}
	var replicas []*pgxpool.Pool // the pools of the standbys, e.g. from provider.New
	set, err := replica.New(ctx, tm, replicas, replica.Config{})
	if err != nil {
		panic(err)
	}
	defer set.Close()

	ctx = replica.WithSession(ctx, replica.NewSession())
	err = set.Do(ctx, func(ctx context.Context) error {
		_, err := tm.Querier(ctx).Exec(ctx, "insert into notes values ('hello')")
		return err
	})
	if err != nil {
		panic(err)
	}
	var n int
	err = set.Read(ctx, func(ctx context.Context) error {
		return tm.Querier(ctx).QueryRow(ctx, "select count(*) from notes where body = 'hello'").Scan(&n)
	})
	fmt.Println(n, err, set.Stats().PrimaryReads)
	// Output: 1 <nil> 1
}
