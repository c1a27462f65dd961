package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
	"github.com/heraldhub/herald/transport/internal/tail"
	"github.com/heraldhub/herald/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serverOptions returns the options of the test's Redis server (shared or its own).
func serverOptions(t testing.TB) Options {
	t.Helper()
	return urlOptions(t, testkit.RedisURL(t))
}

func urlOptions(t testing.TB, raw string) Options {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("redis url %q: %v", raw, err)
	}
	opts, err := ParseURL(u)
	if err != nil {
		t.Fatalf("redis url: %v", err)
	}
	return opts
}

func openT(t testing.TB, opts Options) *Transport {
	t.Helper()
	tr, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Stream, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// ---- tests ----

func TestConformance(t *testing.T) {
	base := serverOptions(t)
	transporttest.Run(t, transporttest.Factory{
		Open: func(t *testing.T, key string, o transporttest.Options) transport.Transport {
			opts := base
			opts.Stream, opts.Size, opts.MaxBytes, opts.SystemSize = key, o.Size, o.MaxBytes, o.SystemSize
			tr, err := Open(t.Context(), opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return tr
		},
		Persistent:  true,
		SystemFlood: 20_000, // one script call each
	})
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		opts    Options
		wantErr string // substring; empty means success
	}{
		{url: "redis://127.0.0.1:6379/0?stream=herald", opts: Options{Addr: "127.0.0.1:6379", Stream: "herald"}},
		{url: "redis://", opts: Options{Addr: "127.0.0.1:6379"}},
		{url: "redis://redis.internal", opts: Options{Addr: "redis.internal:6379"}},
		{url: "REDIS://[::1]:7000/3", opts: Options{Addr: "[::1]:7000", DB: 3}},
		{url: "redis://:s3cret@h:1/", opts: Options{Addr: "h:1", Password: "s3cret"}},
		{url: "redis://herald:s3cret@h:1/2?size=500&max_bytes=1048576&timeout=250ms&stream=a:b",
			opts: Options{Addr: "h:1", Username: "herald", Password: "s3cret", DB: 2, Size: 500, MaxBytes: 1 << 20, Timeout: 250 * time.Millisecond, Stream: "a:b"}},
		{url: "redis://h?size=0", opts: Options{Addr: "h:6379"}},
		{url: "redis://h?system_size=500", opts: Options{Addr: "h:6379", SystemSize: 500}},
		{url: "bolt://x.db", wantErr: `want "redis" or "rediss"`},
		{url: "redis://h/zero", wantErr: "database number"},
		{url: "redis://h:0", wantErr: "bad port"},
		{url: "redis://h?size=-1", wantErr: "size"},
		{url: "redis://h?max_bytes=-1", wantErr: "max_bytes"},
		{url: "redis://h?timeout=5", wantErr: "timeout"},
		{url: "redis://h?timeout=0s", wantErr: "timeout"},
		{url: "redis://h?stream=", wantErr: "stream"},
		{url: "redis://h?size=1&size=2", wantErr: "size given 2 times"},
		{url: "redis://h?sise=1&colour=red&size=3", wantErr: "unknown parameter(s) colour, sise"},
		{url: "redis://h#frag", wantErr: "fragment"},
		{url: "redis:h", wantErr: "want redis://host:port/db"},
		{url: "redis://user:hunter2@h:1/db", wantErr: "database number"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatalf("url.Parse: %v", err)
			}
			opts, err := ParseURL(u)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) error = %v, want one containing %q", tt.url, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("ParseURL error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if opts != tt.opts {
				t.Fatalf("ParseURL(%q) = %+v; want %+v", tt.url, opts, tt.opts)
			}
		})
	}

	u, _ := url.Parse("rediss://u:p@cache.example.com:6380")
	opts, err := ParseURL(u)
	if err != nil || opts.TLS == nil || opts.TLS.ServerName != "cache.example.com" {
		t.Fatalf("ParseURL(rediss) = %+v, %v; want TLS for cache.example.com", opts, err)
	}
}

// Two transports on the same stream are two nodes: each sees every update, in one order, and
// a duplicate ID is refused whichever node it reaches.
func TestCluster(t *testing.T) {
	base := serverOptions(t)
	base.Stream = logtest.StreamName(t)
	logtest.Cluster(t, [3]transport.Transport{openT(t, base), openT(t, base), openT(t, base)})
}

// A reader far behind (beyond what the node keeps in memory) reads on from its own position.
func TestLaggingReader(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	a, b := openT(t, opts), openT(t, opts)
	const n = tail.Count*2 + 100
	execs := make([]rueidisExec, n)
	for i := range execs {
		execs[i] = a.appendExec(logtest.Upd("lag", i))
	}
	a.bulk(t, execs)
	logtest.LaggingReader(t, b, n)
}

// Lowered bounds take effect at Open, and the index follows.
func TestBoundsAtOpen(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	opts.Size = 100
	tr := openT(t, opts)
	for i := range 50 {
		if err := tr.Append(context.Background(), logtest.Upd("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Size = 10
	tr = openT(t, opts)
	got := logtest.ReadAll(t, tr)
	if len(got) != 10 || got[0].ID != "b-40" {
		t.Fatalf("after lowering size to 10: %d updates from %q, want 10 from b-40", len(got), got[0].ID)
	}
	if _, err := tr.Lookup(context.Background(), "b-39"); !errors.Is(err, transport.ErrUnknownID) {
		t.Fatalf("Lookup of a dropped id = %v, want ErrUnknownID", err)
	}
	n, err := tr.c.Do(context.Background(), tr.c.B().Zcard().Key(tr.keys[1]).Build()).AsInt64()
	if err != nil || n != 10 {
		t.Fatalf("index holds %d entries (%v), want 10", n, err)
	}
	if h := logtest.Head(t, tr); h != 50 {
		t.Fatalf("Head = %d, want 50", h)
	}
}

// Keys that do not hold a Herald log are refused with a clear error.
func TestForeignKeys(t *testing.T) {
	opts := serverOptions(t)
	tr := openT(t, Options{Addr: opts.Addr, Username: opts.Username, Password: opts.Password, DB: opts.DB, Stream: logtest.StreamName(t)})
	ctx := context.Background()

	str := logtest.StreamName(t)
	if err := tr.c.Do(ctx, tr.c.B().Set().Key(str).Value("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	foreign := logtest.StreamName(t)
	if err := tr.c.Do(ctx, tr.c.B().Xadd().Key(foreign).Id("*").FieldValue().FieldValue("a", "b").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{str: "holds a string", foreign: "Herald did not write"} {
		o := opts
		o.Stream = name
		if tr, err := Open(ctx, o); err == nil || !strings.Contains(err.Error(), want) {
			if tr != nil {
				_ = tr.Close()
			}
			t.Fatalf("Open(%s) = %v, want an error containing %q", name, err, want)
		}
	}
}

// The retry of an append whose reply was lost succeeds once, with the stored Seq.
func TestAppendRetry(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	tr := openT(t, opts)
	ctx := context.Background()
	u := logtest.Upd("r", 0)
	if err := tr.Append(ctx, u); err != nil {
		t.Fatal(err)
	}
	retry := func(u *transport.Update) (int64, string) {
		e := tr.appendExec(u)
		e.Args[5] = "1"
		res, err := appendScript.Exec(ctx, tr.c, e.Keys, e.Args).ToArray()
		if err != nil {
			t.Fatal(err)
		}
		ok, _ := res[0].AsInt64()
		seq, _ := res[1].ToString()
		return ok, seq
	}
	if ok, seq := retry(logtest.Upd("r", 0)); ok != 1 || seq != fmt.Sprint(u.Seq) {
		t.Fatalf("retry of the stored update = %d, %s; want success with Seq %d", ok, seq, u.Seq)
	}
	other := logtest.Upd("r", 0)
	other.Data = "another payload"
	if ok, _ := retry(other); ok != 0 {
		t.Fatal("retry with another payload under a retained id succeeded")
	}
	if got := logtest.ReadAll(t, tr); len(got) != 1 {
		t.Fatalf("log holds %d updates, want 1", len(got))
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	tr, err := Open(context.Background(), Options{Addr: testkit.FreeAddr(t), Timeout: time.Second})
	if err == nil {
		_ = tr.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if !errors.Is(err, transport.ErrUnavailable) {
		t.Fatalf("Open of a closed port = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Open took %v to fail", d)
	}
}

func TestAppendRejects(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	tr := openT(t, opts)
	if err := tr.Append(context.Background(), &transport.Update{Topics: []string{"t"}}); err == nil {
		t.Fatal("Append without an id succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Append(ctx, logtest.Upd("c", 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	for _, o := range []Options{{Size: -1}, {MaxBytes: -1}, {Timeout: -1}, {DB: -1}} {
		if tr, err := Open(context.Background(), o); err == nil {
			_ = tr.Close()
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

// A refused login is a configuration error, not an outage, and the password stays secret.
func TestOpenWrongPassword(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream, opts.Username, opts.Password = logtest.StreamName(t), "herald-no-such-user", "hunter2"
	tr, err := Open(context.Background(), opts)
	if err == nil {
		_ = tr.Close()
		t.Fatal("Open as a user the server does not know succeeded")
	}
	if errors.Is(err, transport.ErrUnavailable) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open with a wrong password = %v; want a configuration error without the password", err)
	}
	t.Log(err)
}

// A log that holds only system updates so far opens again; one whose stream was deleted
// while it held publishers' updates is refused.
func TestReopenSystemOnly(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	tr := openT(t, opts)
	ctx := context.Background()
	s := &transport.Update{ID: "s", Topics: []string{"t"}, System: true}
	if err := tr.Append(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, opts)
	if seq, err := tr.Lookup(ctx, "s"); err != nil || seq != s.Seq {
		t.Fatalf("Lookup of the system update after reopening = %d, %v; want %d", seq, err, s.Seq)
	}
	if err := tr.Append(ctx, logtest.Upd("u", 0)); err != nil {
		t.Fatal(err)
	}
	if err := tr.c.Do(ctx, tr.c.B().Del().Key(opts.Stream).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if tr, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "is missing") {
		if tr != nil {
			_ = tr.Close()
		}
		t.Fatalf("Open after the stream was deleted = %v, want a refusal", err)
	}
}
