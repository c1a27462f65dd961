package autotls

import (
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
