package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
	"github.com/heraldhub/herald/transport/internal/tail"
	"github.com/heraldhub/herald/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serverOptions returns the options of the test's NATS server (shared or its own).
func serverOptions(t testing.TB) Options {
	t.Helper()
	return urlOptions(t, testkit.NATSURL(t))
}

func urlOptions(t testing.TB, raw string) Options {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("nats url %q: %v", raw, err)
	}
	opts, err := ParseURL(u)
	if err != nil {
		t.Fatalf("nats url: %v", err)
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
			if o.SystemSize == 0 {
				opts.SystemSize = -1 // the bounds' subtests count on an exact Size
			}
			tr, err := Open(t.Context(), opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return tr
		},
		Persistent:  true,
		SharedLimit: true,
		SystemFlood: 10_000, // one publish each
	})
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		opts    Options
		wantErr string // substring; empty means success
	}{
		{url: "nats://127.0.0.1:4222?stream=herald", opts: Options{Servers: []string{"nats://127.0.0.1:4222"}, Stream: "herald"}},
		{url: "nats://", opts: Options{Servers: []string{"nats://127.0.0.1:4222"}}},
		{url: "nats://nats.internal", opts: Options{Servers: []string{"nats://nats.internal:4222"}}},
		{url: "NATS://[::1]:7000/", opts: Options{Servers: []string{"nats://[::1]:7000"}}},
		{url: "nats://tok3n@h:1", opts: Options{Servers: []string{"nats://h:1"}, Token: "tok3n"}},
		{url: "nats://h?system_size=500", opts: Options{Servers: []string{"nats://h:4222"}, SystemSize: 500}},
		{url: "nats://herald:s3cret@h:1?stream=prod&subject=apps.herald&size=500&max_bytes=1048576&replicas=3&storage=memory&timeout=250ms&creds=/etc/h.creds&servers=h2:4222,nats://h3",
			opts: Options{Servers: []string{"nats://h:1", "nats://h2:4222", "nats://h3:4222"}, Username: "herald", Password: "s3cret",
				Stream: "prod", Subject: "apps.herald", Size: 500, MaxBytes: 1 << 20, Replicas: 3, Storage: MemoryStorage,
				Timeout: 250 * time.Millisecond, CredsFile: "/etc/h.creds"}},
		{url: "nats://h?size=0", opts: Options{Servers: []string{"nats://h:4222"}}},
		{url: "redis://h", wantErr: `want "nats"`},
		{url: "nats://h/path", wantErr: "want nats://host:port"},
		{url: "nats://h:0", wantErr: "bad port"},
		{url: "nats://h?size=-1", wantErr: "size"},
		{url: "nats://h?max_bytes=-1", wantErr: "max_bytes"},
		{url: "nats://h?replicas=0", wantErr: "replicas"},
		{url: "nats://h?replicas=7", wantErr: "replicas"},
		{url: "nats://h?storage=disk", wantErr: "storage"},
		{url: "nats://h?timeout=5", wantErr: "timeout"},
		{url: "nats://h?stream=", wantErr: "stream"},
		{url: "nats://h?stream=a.b", wantErr: "stream"},
		{url: "nats://h?stream=a%20b", wantErr: "stream"},
		{url: "nats://h?subject=a.*", wantErr: "subject"},
		{url: "nats://h?subject=a..b", wantErr: "subject"},
		{url: "nats://h?servers=h2:4222,,h3", wantErr: "servers"},
		{url: "nats://h?size=1&size=2", wantErr: "size given 2 times"},
		{url: "nats://h?sise=1&colour=red&size=3", wantErr: "unknown parameter(s) colour, sise"},
		{url: "nats://h#frag", wantErr: "fragment"},
		{url: "nats://user:hunter2@h:1?size=x", wantErr: "size"},
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
			if fmt.Sprintf("%+v", opts) != fmt.Sprintf("%+v", tt.opts) {
				t.Fatalf("ParseURL(%q) = %+v; want %+v", tt.url, opts, tt.opts)
			}
		})
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
	ctx := context.Background()
	const n = tail.Count*2 + 100
	for i := range n {
		if err := a.Append(ctx, logtest.Upd("lag", i)); err != nil {
			t.Fatal(err)
		}
	}
	logtest.LaggingReader(t, b, n)
}

// Reopening with other limits updates the stream; a stream that is not a Herald log is refused.
func TestExistingStream(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	opts.Size = 100
	opts.SystemSize = -1 // the limit is then Size exactly
	tr := openT(t, opts)
	ctx := context.Background()
	for i := range 50 {
		if err := tr.Append(ctx, logtest.Upd("e", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Size = 10
	tr = openT(t, opts)
	got := logtest.ReadAll(t, tr)
	if len(got) != 10 || got[0].ID != "e-40" {
		t.Fatalf("after lowering size to 10: %d updates from %q, want 10 from e-40", len(got), got[0].ID)
	}
	if _, err := tr.Lookup(ctx, "e-39"); !errors.Is(err, transport.ErrUnknownID) {
		t.Fatalf("Lookup of a dropped id = %v, want ErrUnknownID", err)
	}
	if h := logtest.Head(t, tr); h != 50 {
		t.Fatalf("Head = %d, want 50", h)
	}

	// Same stream name, other subjects: not ours.
	o := opts
	o.Subject = "elsewhere"
	if tr, err := Open(ctx, o); err == nil || !strings.Contains(err.Error(), "not the") {
		if tr != nil {
			_ = tr.Close()
		}
		t.Fatalf("Open with other subjects = %v, want a refusal", err)
	}
	// Same stream, other storage: JetStream cannot change it.
	o = opts
	o.Storage = MemoryStorage
	if tr, err := Open(ctx, o); err == nil || !strings.Contains(err.Error(), "storage") {
		if tr != nil {
			_ = tr.Close()
		}
		t.Fatalf("Open with memory storage = %v, want a refusal", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	tr, err := Open(context.Background(), Options{Servers: []string{"nats://" + testkit.FreeAddr(t)}, Timeout: time.Second})
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
	big := logtest.Upd("big", 0)
	big.Data = strings.Repeat("x", int(tr.nc.MaxPayload()))
	if err := tr.Append(context.Background(), big); err == nil || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("Append of an update over max_payload = %v, want a clear error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Append(ctx, logtest.Upd("c", 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	for _, o := range []Options{{Size: -1}, {MaxBytes: -1}, {Timeout: -1}, {Replicas: 6}, {Storage: "disk"}, {Stream: "a.b"}, {Subject: "a.>"}} {
		if tr, err := Open(context.Background(), o); err == nil {
			_ = tr.Close()
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

// A stream made before system updates had their slots is adopted: its subjects and per-subject
// limit are updated. Another node finds a system update by its ID once its watcher delivered
// it, until the slot holds a newer one.
func TestSystemSlots(t *testing.T) {
	opts := serverOptions(t)
	opts.Stream = logtest.StreamName(t)
	opts.SystemSize = 3
	ctx := context.Background()
	nc, err := nats.Connect(opts.Servers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: opts.Stream, Subjects: []string{opts.Stream + ".id.*"},
		Retention: jetstream.LimitsPolicy, MaxMsgs: 100, Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	a, b := openT(t, opts), openT(t, opts)
	info, err := js.Stream(ctx, opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info.CachedInfo().Config; len(cfg.Subjects) != 2 || cfg.MaxMsgsPerSubject != 1 || cfg.MaxMsgs != int64(DefaultSize+3) {
		t.Fatalf("adopted stream: subjects %q, %d per subject, max %d messages", cfg.Subjects, cfg.MaxMsgsPerSubject, cfg.MaxMsgs)
	}
	first := &transport.Update{ID: "s-0", Topics: []string{"t"}, System: true}
	if err := a.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		seq, err := b.Lookup(ctx, "s-0")
		if err == nil && seq == first.Seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup on the other node = %d, %v; want %d", seq, err, first.Seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 1; i <= 3; i++ {
		if err := a.Append(ctx, &transport.Update{ID: fmt.Sprintf("s-%d", i), Topics: []string{"t"}, System: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Lookup(ctx, "s-0"); !errors.Is(err, transport.ErrUnknownID) {
		t.Fatalf("Lookup of a system update whose slot was reused = %v, want ErrUnknownID", err)
	}
	if got := logtest.ReadAll(t, a); len(got) != 3 || got[0].ID != "s-1" || !got[0].System {
		t.Fatalf("Read(0) = %d updates from %q, want the 3 newest system updates", len(got), got[0].ID)
	}
}
