package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/bolt"
)

// TestLongReplayWhilePublishing reconnects a subscriber that missed far more updates than its
// queue holds, from the bolt store, while a publisher keeps publishing: it gets every update
// once, in order, history then live, with no gap.
func TestLongReplayWhilePublishing(t *testing.T) {
	missed := 20_000
	if testing.Short() {
		missed = 5_000
	}
	const live = 500
	tr, err := bolt.Open(filepath.Join(t.TempDir(), "herald.db"), bolt.Options{Size: 2 * (missed + live)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var wg sync.WaitGroup
	for p := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < missed; i += 32 {
				if err := tr.Append(context.Background(), &transport.Update{ID: fmt.Sprintf("u%06d", i), Topics: []string{"t"}, Data: fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// The concurrent appends above are in log order, not id order: read the order back.
	var order []string
	for after := uint64(0); ; {
		batch, err := tr.Read(context.Background(), after, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, u := range batch {
			order = append(order, u.ID)
			after = u.Seq
		}
	}

	th := testkit.StartHub(t, testkit.HubOptions{Transport: tr, Hub: func(c *hub.Config) { c.QueueSize = 100 }, Server: func(c *server.Config) { c.Anonymous = true }})
	h := th.Hub
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, th.URL+"?topic=t", nil)
	req.Header.Set("Last-Event-ID", "earliest")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Live publishing starts as the replay starts.
	liveDone := make(chan error, 1)
	go func() {
		for i := range live {
			if err := h.Publish(context.Background(), &transport.Update{ID: fmt.Sprintf("live%04d", i), Topics: []string{"t"}}); err != nil {
				liveDone <- err
				return
			}
		}
		liveDone <- nil
	}()
	r := sse.NewReader(bufio.NewReader(resp.Body))
	for i := range missed + live {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", i, err)
		}
		want := ""
		if i < missed {
			want = order[i]
		} else {
			want = fmt.Sprintf("live%04d", i-missed)
		}
		if m.ID != want {
			t.Fatalf("event %d is %q, want %q", i, m.ID, want)
		}
	}
	if err := <-liveDone; err != nil {
		t.Fatal(err)
	}
}
