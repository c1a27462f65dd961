package nats

import (
	"testing"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
	"github.com/heraldhub/herald/transport/internal/restarttest"
)

// Killing the NATS server (SIGKILL, as a crash) while nodes publish and tail, then starting
// it again (JetStream file storage): see restarttest.Run.
func TestServerRestart(t *testing.T) {
	srv := testkit.StartNATS(t)
	opts := urlOptions(t, srv.URL())
	opts.Stream = logtest.StreamName(t)
	opts.Timeout = restarttest.Timeout
	opts.Logger = logtest.Logger(t)
	restarttest.Run(t, srv, func() transport.Transport { return openT(t, opts) })
}
