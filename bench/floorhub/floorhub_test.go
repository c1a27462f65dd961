package floorhub_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhub/herald/bench/floorhub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFloorHub(t *testing.T) {
	h := floorhub.New()
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer h.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	u := ts.URL + floorhub.Path

	resp, err := hc.Get(u + "?topic=a&topic=b")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("subscribe: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != ":\n" {
		t.Fatalf("opening %q, %v", line, err)
	}
	if h.Subscribers() != 1 {
		t.Fatalf("%d subscribers", h.Subscribers())
	}

	publish := func(form url.Values) (int, string) {
		resp, err := hc.PostForm(u, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, id := publish(url.Values{"topic": {"a", "b"}, "data": {"one\ntwo"}, "id": {"x1"}, "type": {"t"}}); code != 200 || id != "x1" {
		t.Fatalf("publish: %d %q", code, id)
	}
	if code, id := publish(url.Values{"topic": {"c"}, "data": {"other topic"}}); code != 200 || id != "urn:floor:1" {
		t.Fatalf("publish: %d %q", code, id)
	}
	if code, id := publish(url.Values{"topic": {"b"}, "data": {"3"}}); code != 200 || id != "urn:floor:2" {
		t.Fatalf("publish: %d %q", code, id)
	}
	if code, _ := publish(url.Values{"data": {"x"}}); code != 400 {
		t.Fatalf("no topic: %d", code)
	}
	want := "event: t\nid: x1\ndata: one\ndata: two\n\nid: urn:floor:2\ndata: 3\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("stream %q, %v", got, err)
	}

	for path, code := range map[string]int{floorhub.Path: 400, "/elsewhere?topic=a": 404} {
		r, err := hc.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != code {
			t.Errorf("GET %s: %d", path, r.StatusCode)
		}
	}

	// Close ends the stream cleanly.
	h.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(br); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
}
