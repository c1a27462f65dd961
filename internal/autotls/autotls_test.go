package autotls

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIsLocal(t *testing.T) {
	for name, want := range map[string]bool{
		"localhost": true, "app.localhost": true, "127.0.0.1": true, "::1": true, "192.168.1.10": true,
		"hub.example.com": false, "localhost.example.com": false, "hub.test": false,
	} {
		if got := IsLocal(name); got != want {
			t.Errorf("IsLocal(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestDefaultDataDir(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_DATA_HOME": "/data", "HOME": "/home/h"}, "/data/herald"},
		{map[string]string{"HOME": "/home/h"}, "/home/h/.local/share/herald"},
		{nil, "herald-data"},
	} {
		if got := DefaultDataDir(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
}

// TestDataDir checks the data directory: created 0700, an open one warned about, and the
// local CA's root and key written 0600.
func TestDataDir(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := filepath.Join(t.TempDir(), "data")
	m, err := New(Config{Names: []string{"localhost"}, DataDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	for path, want := range map[string]os.FileMode{
		dir: 0o700, filepath.Join(dir, "pki", "local"): 0o700,
		filepath.Join(dir, "pki", "local", "root.crt"): 0o600, filepath.Join(dir, "pki", "local", "root.key"): 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if strings.Contains(logs.String(), "other users may read it") {
		t.Errorf("warned about a private directory: %s", logs.String())
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err = New(Config{Names: []string{"localhost"}, DataDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	if !strings.Contains(logs.String(), `msg="data_dir holds private keys but other users may read it: chmod 700 it" data_dir=`+dir+" mode=-rwxr-xr-x") {
		t.Errorf("no warning about an open directory: %s", logs.String())
	}
}
