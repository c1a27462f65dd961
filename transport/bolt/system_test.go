package bolt

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
)

// sysUpd returns the i-th system update of a test.
func sysUpd(i int) *transport.Update {
	return &transport.Update{ID: fmt.Sprintf("sys-%d", i), Topics: []string{"/.well-known/mercure/subscriptions/x"}, Private: true, System: true, Data: "{}"}
}

func appendOK(t *testing.T, tr *Transport, u *transport.Update) *transport.Update {
	t.Helper()
	if err := tr.Append(context.Background(), u); err != nil {
		t.Fatalf("Append(%q): %v", u.ID, err)
	}
	return u
}

func ids(ups []*transport.Update) string {
	var out []string
	for _, u := range ups {
		out = append(out, fmt.Sprintf("%s@%d", u.ID, u.Seq))
	}
	return fmt.Sprint(out)
}

// System updates cost no write-ahead log write, no sync and no bbolt record.
func TestSystemUpdatesStayInMemory(t *testing.T) {
	tr := openT(t, tempPath(t), Options{SystemSize: 3})
	a := appendOK(t, tr, logtest.Upd("a", 0))
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	commits, applies, off := tr.commits, tr.applies, tr.wal.files[tr.wal.cur].off
	var sys []*transport.Update
	for i := range 20_000 {
		sys = append(sys, appendOK(t, tr, sysUpd(i)))
	}
	if tr.commits != commits || tr.wal.files[tr.wal.cur].off != off {
		t.Fatalf("system updates wrote the write-ahead log: %d syncs, offset %d; want %d, %d", tr.commits, tr.wal.files[tr.wal.cur].off, commits, off)
	}
	if n, _ := stored(t, tr); n != 1 || tr.applies != applies {
		t.Fatalf("bbolt holds %d records after %d more commits, want 1 after none", n, tr.applies-applies)
	}
	b := appendOK(t, tr, logtest.Upd("b", 0))
	if b.Seq != sys[len(sys)-1].Seq+1 {
		t.Fatalf("publishers' update after the system ones has Seq %d, want %d", b.Seq, sys[len(sys)-1].Seq+1)
	}
	want := ids([]*transport.Update{a, sys[19_997], sys[19_998], sys[19_999], b})
	if got := ids(logtest.ReadAll(t, tr)); got != want {
		t.Fatalf("Read(0) = %s, want %s", got, want)
	}
}

// After a clean close the Seqs of system updates are not given again; after a crash the
// write-ahead log's skip records account for them, and the updates around them come back.
func TestSystemSeqsAcrossRestarts(t *testing.T) {
	path := tempPath(t)
	tr := openT(t, path, Options{})
	a := appendOK(t, tr, logtest.Upd("a", 0))
	x := appendOK(t, tr, sysUpd(0))
	appendOK(t, tr, sysUpd(1))
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, path, Options{})
	if h := logtest.Head(t, tr); h != a.Seq+2 {
		t.Fatalf("Head after a clean close = %d, want %d (the system updates' Seqs stay used)", h, a.Seq+2)
	}
	if _, err := tr.Lookup(context.Background(), x.ID); err == nil {
		t.Fatalf("Lookup(%q) after a restart found it; system updates are not stored", x.ID)
	}
	b := appendOK(t, tr, logtest.Upd("b", 0))
	if b.Seq != a.Seq+3 {
		t.Fatalf("first Seq after the restart = %d, want %d", b.Seq, a.Seq+3)
	}

	// Now die with a publishers' update after system updates only in the write-ahead log.
	for i := range 5 {
		appendOK(t, tr, sysUpd(10+i))
	}
	stopApplying(t, tr)
	c := appendOK(t, tr, logtest.Upd("c", 0))
	appendOK(t, tr, sysUpd(20))
	d := appendOK(t, tr, logtest.Upd("d", 0))
	if err := tr.Close(); err != nil {
		t.Log(err) // bbolt refused the last commits: they stay in the log
	}
	tr = openT(t, path, Options{})
	want := ids([]*transport.Update{a, b, c, d})
	if got := ids(logtest.ReadAll(t, tr)); got != want {
		t.Fatalf("Read(0) after a crash = %s, want %s", got, want)
	}
	if h := logtest.Head(t, tr); h != d.Seq {
		t.Fatalf("Head after the crash = %d, want %d", h, d.Seq)
	}
}

func TestDecodeMetaV1(t *testing.T) {
	v2 := meta{head: 20, first: 15, base: 12, bytes: 600, garbageBytes: 300}.encode()
	v1 := append([]byte{1}, v2[1:metaLenV1]...)
	m, err := decodeMeta(v1)
	if err != nil {
		t.Fatal(err)
	}
	if m.count != 6 || m.garbageCount != 3 || m.head != 20 || m.bytes != 600 {
		t.Fatalf("decoded version 1 meta %+v, want 6 retained and 3 dropped records", m)
	}
	m.count, m.garbageCount = 4, 2
	if got, err := decodeMeta(m.encode()); err != nil || got != m {
		t.Fatalf("round trip of %+v = %+v, %v", m, got, err)
	}
	m.count = 7
	if _, err := decodeMeta(m.encode()); err == nil {
		t.Fatalf("decodeMeta accepted %d retained records in Seqs 15 to 20", m.count)
	}
}
