package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/bolt"
)

// BenchmarkReplayHTTP measures a reconnecting subscriber catching up on 100 000 missed updates
// stored in the default (bolt) transport, over real HTTP on loopback: from the request to the
// last event parsed by the client.
func BenchmarkReplayHTTP(b *testing.B) {
	const missed = 100_000
	tr, err := bolt.Open(filepath.Join(b.TempDir(), "herald.db"), bolt.Options{Size: 2 * missed})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	// Fill the log with 64 concurrent publishers, which group commit batches.
	var wg sync.WaitGroup
	for p := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < missed; i += 64 {
				u := &transport.Update{ID: fmt.Sprintf("u%06d", i), Topics: []string{"https://example.com/feed"}, Data: `{"n":` + fmt.Sprint(i) + `,"text":"a short message"}`}
				if err := tr.Append(context.Background(), u); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	th := testkit.StartHub(b, testkit.HubOptions{Transport: tr, Server: func(c *server.Config) { c.Anonymous = true }})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodGet, th.URL+"?topic=https://example.com/feed", nil)
		req.Header.Set("Last-Event-ID", "earliest")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		r := sse.NewReader(bufio.NewReaderSize(resp.Body, 64<<10))
		for n := 0; n < missed; n++ {
			if _, err := r.Next(); err != nil {
				b.Fatalf("after %d events: %v", n, err)
			}
		}
		resp.Body.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(missed*b.N)/b.Elapsed().Seconds(), "updates/s")
}
