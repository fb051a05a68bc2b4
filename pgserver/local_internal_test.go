package pgserver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVersionDirsHighestFirst(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "10", "16", "9.5"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, v, "bin"), 0o755))
	}

	got := versionDirs(filepath.Join(root, "*", "bin"))

	var versions []string
	for _, d := range got {
		versions = append(versions, filepath.Base(filepath.Dir(d)))
	}
	assert.Equal(t, []string{"16", "15", "10", "9.6", "9.5"}, versions)
}

func TestFindBinDirFollowsSymlinks(t *testing.T) {
	real := t.TempDir()
	for _, name := range []string{"initdb", "postgres"} {
		require.NoError(t, os.WriteFile(filepath.Join(real, name), []byte("#!/bin/sh\n"), 0o755))
	}
	onPath := t.TempDir() // like /usr/local/bin: a link to initdb only
	require.NoError(t, os.Symlink(filepath.Join(real, "initdb"), filepath.Join(onPath, "initdb")))

	dir, err := findBinDir([]string{t.TempDir(), onPath})

	require.NoError(t, err)
	assert.Equal(t, real, dir)
}

func TestRenderSettingsQuotes(t *testing.T) {
	conf, err := renderSettings([][2]string{{"application_name", `it's a \ test`}, {"max_connections", "7"}})
	require.NoError(t, err)
	assert.Equal(t, "application_name = 'it''s a \\\\ test'\nmax_connections = '7'\n", conf)

	_, err = renderSettings([][2]string{{"work_mem", "1MB\nfsync = on"}})
	assert.ErrorContains(t, err, "line break")
}
