package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/uno-framework/uno/internal/pgclone"
)

// templateName is the (empty) database every package database is cloned from. Bump the
// version when what the template holds changes: a server such as the one on
// 127.0.0.1:5432 keeps the template from run to run.
const templateName = "uno_template_v1"

// dropDatabase drops the package database, closing the connections still on it.
func dropDatabase(adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return pgclone.Drop(ctx, adminURL, name)
}

// packageName is the name of the directory the test binary runs in: its package's.
func packageName() string {
	wd, err := os.Getwd()
	if err != nil {
		return "pkg"
	}
	return filepath.Base(wd)
}
