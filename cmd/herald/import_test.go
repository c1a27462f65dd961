package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/bolt"
)

// writeReferenceDB writes updates to a bolt file the way the reference hub's bolt transport
// does: one bucket, each key the bucket's next sequence number (8 bytes, big-endian) followed
// by the update id, each value the JSON of the reference's Update (its embedded Event's fields,
// then Topics, Private and Debug).
func writeReferenceDB(t testing.TB, path, bucket string, ups []*transport.Update) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type event struct {
		Data  string
		ID    string
		Type  string
		Retry uint64
	}
	type update struct {
		event
		Topics  []string
		Private bool
		Debug   bool
	}
	const perTx = 10_000 // the reference commits one update per transaction; batching only speeds the test
	for len(ups) > 0 {
		n := min(perTx, len(ups))
		err := db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err != nil {
				return err
			}
			for _, u := range ups[:n] {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				v, err := json.Marshal(update{event: event{Data: u.Data, ID: u.ID, Type: u.Type, Retry: u.Retry}, Topics: u.Topics, Private: u.Private})
				if err != nil {
					return err
				}
				k := binary.BigEndian.AppendUint64(nil, seq)
				if err := b.Put(append(k, u.ID...), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ups = ups[n:]
	}
}

// fileSum is the SHA-256 of a file, to prove that an import did not change it.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// runImport runs `herald import` with args and returns its exit code, stdout and stderr.
func runImport(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"import"}, args...), noEnv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// readAll returns every update of a bolt store.
func readAll(t *testing.T, path string) []*transport.Update {
	t.Helper()
	tr, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var all []*transport.Update
	for {
		var after uint64
		if len(all) > 0 {
			after = all[len(all)-1].Seq
		}
		ups, err := tr.Read(context.Background(), after, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) == 0 {
			return all
		}
		all = append(all, ups...)
	}
}

// summary matches the first words of import's summary line, without its duration.
func summary(imported, skipped, invalid int) string {
	return fmt.Sprintf("imported %d updates, skipped %d already in the store, %d unreadable, in ", imported, skipped, invalid)
}

// TestImport imports a reference hub's file into a bolt store: every field of every update,
// in order, with its id; a second run skips them all; the file is unchanged; and a client of
// a hub on the imported store that reconnects with a Last-Event-ID the reference hub issued
// gets exactly the updates after it, private ones included.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	src, store := filepath.Join(dir, "mercure.db"), filepath.Join(dir, "herald.db")
	ups := []*transport.Update{
		{ID: "urn:uuid:0193a1b2-0000-7000-8000-000000000001", Topics: []string{"https://example.com/books/1"}, Data: `{"title":"one"}`},
		{ID: "urn:uuid:0193a1b2-0000-7000-8000-000000000002", Topics: []string{"https://example.com/books/2", "https://example.com/authors/9"}, Data: "two\nlines", Type: "book", Retry: 2500},
		{ID: "custom-3", Topics: []string{"https://example.com/books/1"}, Data: "secret", Private: true},
		{ID: "urn:uuid:0193a1b2-0000-7000-8000-000000000004", Topics: []string{"https://example.com/books/1"}, Data: ""},
		{ID: "custom-5", Topics: []string{"https://example.com/books/3"}, Data: "five", Type: "update"},
	}
	writeReferenceDB(t, src, "updates", ups)
	before := fileSum(t, src)

	code, out, errOut := runImport(t, "--transport-url", "bolt://"+store, src)
	if code != 0 || !strings.HasPrefix(out, summary(5, 0, 0)) || errOut != "" {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	got := readAll(t, store)
	if len(got) != len(ups) {
		t.Fatalf("the store holds %d updates, want %d", len(got), len(ups))
	}
	for i, u := range got {
		want := *ups[i]
		want.Seq = u.Seq
		if fmt.Sprintf("%#v", *u) != fmt.Sprintf("%#v", want) {
			t.Errorf("update %d:\n got %#v\nwant %#v", i, *u, want)
		}
	}

	code, out, errOut = runImport(t, "--transport-url", "bolt://"+store, src)
	if code != 0 || !strings.HasPrefix(out, summary(0, 5, 0)) || errOut != "" {
		t.Fatalf("second import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if n := len(readAll(t, store)); n != 5 {
		t.Fatalf("after the second import the store holds %d updates, want 5", n)
	}
	if fileSum(t, src) != before {
		t.Fatal("the import changed the reference hub's file")
	}

	hubURL := startServe(t, "--transport-url", "bolt://"+store)
	req, _ := http.NewRequest(http.MethodGet, hubURL+"?topic=https://example.com/books/{id}", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, nil, []string{"https://example.com/books/1"}))
	req.Header.Set("Last-Event-ID", ups[1].ID)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Last-Event-ID") != ups[1].ID {
		t.Fatalf("subscribe: %d, Last-Event-ID %q", resp.StatusCode, resp.Header.Get("Last-Event-ID"))
	}
	want := ":\n" +
		"id: custom-3\ndata: secret\n\n" +
		"id: urn:uuid:0193a1b2-0000-7000-8000-000000000004\ndata: \n\n" +
		"event: update\nid: custom-5\ndata: five\n\n"
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != want {
		t.Fatalf("replay after the reference's id: %q, %v; want %q", buf, err, want)
	}
}

// TestImportResumes imports a file, then a longer version of it, as when the reference hub ran
// on between two imports: the second run appends only the new updates, even though the store's
// bound (size=3) has dropped the oldest imported ones, which must not come back after newer ones.
func TestImportResumes(t *testing.T) {
	dir := t.TempDir()
	src, store := filepath.Join(dir, "mercure.db"), filepath.Join(dir, "herald.db")
	var ups []*transport.Update
	for i := range 8 {
		ups = append(ups, &transport.Update{ID: fmt.Sprintf("u%d", i), Topics: []string{"t"}, Data: fmt.Sprint(i)})
	}
	writeReferenceDB(t, src, "updates", ups[:5])
	url := "bolt://" + store + "?size=3"
	if code, out, errOut := runImport(t, "--transport-url", url, src); code != 0 || !strings.HasPrefix(out, summary(5, 0, 0)) {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	writeReferenceDB(t, src, "updates", ups[5:])
	if code, out, errOut := runImport(t, "--transport-url", url, src); code != 0 || !strings.HasPrefix(out, summary(3, 5, 0)) {
		t.Fatalf("second import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var ids []string
	for _, u := range readAll(t, store) {
		ids = append(ids, u.ID)
	}
	if strings.Join(ids, " ") != "u5 u6 u7" {
		t.Fatalf("the store holds %v, want [u5 u6 u7]", ids)
	}
}

// TestImportBadInput checks the errors of import: no file, a missing bucket (the message lists
// the buckets there are), a file that is not a bolt file, unreadable entries (the others are
// imported and the exit code says something was left out), and --bucket.
func TestImportBadInput(t *testing.T) {
	dir := t.TempDir()
	store := "bolt://" + filepath.Join(dir, "herald.db")

	if code, _, errOut := runImport(t, "--transport-url", store, filepath.Join(dir, "none.db")); code != 1 || !strings.Contains(errOut, "none.db: no such file or directory") {
		t.Fatalf("missing file: exit %d, stderr %q", code, errOut)
	}
	notBolt := filepath.Join(dir, "not.db")
	if err := os.WriteFile(notBolt, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runImport(t, "--transport-url", store, notBolt); code != 1 || !strings.HasPrefix(errOut, "herald import: opening "+notBolt+": ") {
		t.Fatalf("not a bolt file: exit %d, stderr %q", code, errOut)
	}

	src := filepath.Join(dir, "mercure.db")
	writeReferenceDB(t, src, "history", []*transport.Update{{ID: "a", Topics: []string{"t"}, Data: "a"}})
	code, _, errOut := runImport(t, "--transport-url", store, src)
	if want := `herald import: ` + src + ` has no bucket "updates" (it has "history"); give the reference hub's bucket_name with --bucket` + "\n"; code != 1 || errOut != want {
		t.Fatalf("missing bucket: exit %d, stderr %q, want %q", code, errOut, want)
	}

	db, err := bbolt.Open(src, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("history"))
		if err := b.Put(append(binary.BigEndian.AppendUint64(nil, 2), "b"...), []byte("{not json")); err != nil {
			return err
		}
		if err := b.Put(append(binary.BigEndian.AppendUint64(nil, 3), "c"...), []byte(`{"ID":"c","Data":"c"}`)); err != nil {
			return err
		}
		return b.Put(append(binary.BigEndian.AppendUint64(nil, 4), "d"...), []byte(`{"ID":"d","Topics":["t"],"Data":"d"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runImport(t, "--bucket", "history", "--transport-url", store, src)
	wantErr := "entry 2: update \"b\": invalid character 'n' looking for beginning of object key string\n" +
		"entry 3: update \"c\" has no topic\n" +
		"herald import: 2 entries of " + src + " could not be read (see above); the others were imported\n"
	if code != 1 || !strings.HasPrefix(out, summary(2, 0, 2)) || errOut != wantErr {
		t.Fatalf("unreadable entries: exit %d, stdout %q, stderr %q, want %q", code, out, errOut, wantErr)
	}
}

// TestImport100k imports 100 000 updates, a large reference hub's history, into the default
// bolt store, checks every id and payload in order, and runs the import again: all skipped.
// About 2 s, 14 s under the race detector.
func TestImport100k(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 100 000 updates")
	}
	dir := t.TempDir()
	src, store := filepath.Join(dir, "mercure.db"), filepath.Join(dir, "herald.db")
	const n = 100_000
	ups := make([]*transport.Update, n)
	for i := range ups {
		ups[i] = &transport.Update{ID: fmt.Sprintf("urn:uuid:00000000-0000-7000-8000-%012d", i), Topics: []string{fmt.Sprintf("https://example.com/books/%d", i%100)}, Data: fmt.Sprintf(`{"n":%d}`, i)}
	}
	writeReferenceDB(t, src, "updates", ups)
	start := time.Now()
	code, out, errOut := runImport(t, "--transport-url", "bolt://"+store, src)
	if code != 0 || !strings.HasPrefix(out, summary(n, 0, 0)) || errOut != "" {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("imported %d updates in %v", n, time.Since(start))
	got := readAll(t, store)
	if len(got) != n {
		t.Fatalf("the store holds %d updates, want %d", len(got), n)
	}
	for i, u := range got {
		if u.ID != ups[i].ID || u.Data != ups[i].Data || u.Topics[0] != ups[i].Topics[0] {
			t.Fatalf("update %d is %q %q, want %q %q", i, u.ID, u.Data, ups[i].ID, ups[i].Data)
		}
	}
	if code, out, errOut := runImport(t, "--transport-url", "bolt://"+store, src); code != 0 || !strings.HasPrefix(out, summary(0, n, 0)) {
		t.Fatalf("second import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestImportSyncInterval: an import into a bolt store syncs its write-ahead log in batches
// unless sync_interval is configured, in the directive or in the URL.
func TestImportSyncInterval(t *testing.T) {
	for _, c := range []struct {
		url        string
		configured time.Duration
		want       time.Duration
	}{
		{"bolt://herald.db", 0, importSyncBatch},
		{"bolt://herald.db?size=10", 0, importSyncBatch},
		{"bolt://herald.db?sync_interval=0", 0, 0},
		{"bolt://herald.db", -1, -1},
		{"bolt://herald.db", time.Second, time.Second},
		{"redis://127.0.0.1:6379/0", 0, 0},
		{"local://", 0, 0},
	} {
		if got, err := importSyncInterval(c.url, c.configured); err != nil || got != c.want {
			t.Errorf("importSyncInterval(%q, %v) = %v, %v; want %v", c.url, c.configured, got, err, c.want)
		}
	}
}
