package compat_test

import (
	"context"
	"fmt"

	"github.com/uno-framework/uno/compat"
)

// Legacy code keeps compiling and working; each legacy value logs one deprecation
// warning that names its replacement.
func ExampleNewUnoDatabaseProvider() {
	ctx := context.Background()
	db, err := compat.NewUnoDatabaseProvider(ctx, compat.ConnectionConfig{
		DBHost: "localhost", DBPort: 5432, DBRole: "postgres", DBName: "postgres", PoolSize: 5,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	mgr := compat.NewUnoDBManager(db)
	ok, err := mgr.DatabaseExists(ctx, "postgres")
	fmt.Println(ok, err)
}

func ExampleConnectionConfig() {
	cc := compat.ConnectionConfig{DBHost: "db", DBPort: 5432, DBRole: "app", DBName: "shop", DBUserPw: "secret", PoolSize: 10}
	fmt.Println(cc)
	fmt.Println(cc.Config())
	// Output:
	// compat.ConnectionConfig{DBHost:db DBPort:5432 DBRole:app DBName:shop DBUserPw:xxxxx PoolSize:10}
	// postgres://app:xxxxx@db:5432/shop
}
