package schema_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// generatedDirs returns the directories of generated ent code below root (relative
// paths): those with a generate.go that runs the ent generator.
func generatedDirs(t *testing.T, root string) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.Name() != "generate.go" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(data, []byte(" ent generate ")) {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		dirs = append(dirs, filepath.ToSlash(rel))
		return err
	})
	require.NoError(t, err)
	require.Contains(t, dirs, "ent")
	return dirs
}

// TestGeneratedCodeIsCurrent regenerates every generated ent directory from its schemas
// in a copy of the module and checks that the result is byte for byte the committed
// code: the generated code is current, and generation is deterministic.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating the ent code takes a few seconds; skipped with -short")
	}
	if os.Getenv("UNO_CI_CHECKS_GENERATED") != "" {
		t.Skip("the CI script checks the generated code itself, in a copy of the tree of its own")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	copyRoot := t.TempDir()
	require.NoError(t, copyModule(root, copyRoot))

	dirs := generatedDirs(t, root)
	args := []string{"generate"}
	for _, dir := range dirs {
		args = append(args, "./"+dir+"/")
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = copyRoot
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s failed:\n%s", strings.Join(args, " "), out)

	for _, dir := range dirs {
		committed := readTree(t, filepath.Join(root, dir))
		generated := readTree(t, filepath.Join(copyRoot, dir))
		for name := range committed {
			if _, ok := generated[name]; !ok {
				t.Errorf("%s/%s is committed but no longer generated; run go generate ./... and delete it", dir, name)
			}
		}
		for name, content := range generated {
			old, ok := committed[name]
			switch {
			case !ok:
				t.Errorf("%s/%s is generated but not committed; run go generate ./...", dir, name)
			case !bytes.Equal(old, content):
				t.Errorf("%s/%s differs from what go generate produces; run go generate ./...", dir, name)
			}
		}
	}
}

// copyModule copies the module's Go sources, embedded SQL and module files (not .git,
// not test data) so that the copy can be built and generated on its own.
func copyModule(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		name := d.Name()
		// .sql files are embedded; tools.go.mod and tools.go.sum pin the generator.
		if !strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, ".sql") &&
			!strings.HasSuffix(name, ".mod") && !strings.HasSuffix(name, ".sum") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	require.NoError(t, err)
	return files
}
