package bench_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/bench/floorhub"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
)

// workerEnv makes the test binary act as a `herald bench worker` process.
const workerEnv = "HERALD_BENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := bench.RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// workerCommand starts this test binary as a worker process.
func workerCommand() *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	return cmd
}

const testKey = testkit.TestKey

// newHerald starts a real Herald hub (in-memory log, HS256 key testKey) over loopback and
// returns its endpoint URL; configure may change the server configuration.
func newHerald(t testing.TB, configure func(*server.Config)) string {
	t.Helper()
	return testkit.StartHub(t, testkit.HubOptions{Server: configure}).URL
}

// newFloor starts the floor hub, optionally behind wrap, and returns its endpoint URL.
func newFloor(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := floorhub.New()
	var handler http.Handler = h
	if wrap != nil {
		handler = wrap(h)
	}
	ts := httptest.NewServer(handler)
	t.Cleanup(func() {
		h.Close()
		ts.Close()
	})
	return ts.URL + floorhub.Path
}

// opts returns the common options of a test run against hubURL.
func opts(hubURL string) bench.Options {
	return bench.Options{Hub: hubURL, Key: testKey, Timeout: 20 * time.Second, ReconnectDelay: 20 * time.Millisecond}
}
