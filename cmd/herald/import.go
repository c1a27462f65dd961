package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/bbolt"

	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/internal/cli"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/bolt"
)

// referenceBucket is the bucket the reference hub keeps its history in unless its bolt
// transport's bucket_name says otherwise.
const referenceBucket = "updates"

// referenceUpdate is one value of the reference hub's bolt bucket: the JSON of its update,
// whose field names are Go's (ID, Type, Retry, Data, Topics, Private; others are ignored).
type referenceUpdate struct {
	ID      string
	Type    string
	Retry   uint64
	Data    string
	Topics  []string
	Private bool
}

// importStats counts what an import did.
type importStats struct {
	imported, skipped, invalid int
}

// importCommand implements `herald import`: it appends the history kept by a reference hub's
// bolt file to the store Herald is configured with, in the order of the file and with the
// original ids, so that clients reconnecting with a Last-Event-ID the reference hub issued
// resume where they were. Ids already in the store are skipped, so a re-run (after an
// interruption, or to catch up) imports only what is missing. The file is only read.
func importCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("herald import", flag.ContinueOnError)
	bucket := fs.String("bucket", referenceBucket, "bucket of the reference hub's history (its bolt transport's bucket_name)")
	transportURL := fs.String("transport-url", "", "store to append to (default: transport_url as `herald serve` reads it, bolt://herald.db unless configured)")
	configFile := fs.String("config", "", "Herald configuration file to read transport_url from (default $"+config.EnvConfigFile+")")
	cli.SetUsage(fs, "import [flags] PATH/TO/mercure.db", `Appends every update kept in a reference Mercure hub's bolt file to Herald's store, in order and
with its id, so that clients resume with the Last-Event-ID they have. Updates whose id the store
already holds are skipped: running it again imports only what is missing. The file is opened
read-only (stop the reference hub first: it locks the file). With the default bolt store, stop
Herald too.`)
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one bolt file to import")
	}
	src := fs.Arg(0)

	// The store serve would use. --dev only waives the key check, which an import does not
	// need; nothing else of dev mode applies here.
	loadArgs := []string{"--dev"}
	if *configFile != "" {
		loadArgs = append(loadArgs, "--config", *configFile)
	}
	cfg, err := config.Load(loadArgs, getenv, io.Discard, stderr)
	if err != nil {
		return err
	}
	storeURL := cmp.Or(*transportURL, cfg.TransportURL)
	syncInterval, err := importSyncInterval(storeURL, cfg.SyncInterval)
	if err != nil {
		return err
	}

	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	db, err := bbolt.Open(src, 0o400, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("opening %s: the file is locked by another process; stop the reference hub first", src)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer db.Close()

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tr, _, err := openTransport(storeURL, syncInterval, log)
	if err != nil {
		return err
	}
	defer func() {
		// For bolt, Close writes what the write-ahead log holds to bbolt and syncs it: the
		// import is durable only once it returns.
		if cerr := tr.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store: %w", cerr))
		}
	}()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var st importStats
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(*bucket))
		if b == nil {
			return fmt.Errorf("%s has no bucket %q (it has %s); give the reference hub's bucket_name with --bucket", src, *bucket, bucketNames(tx))
		}
		return importBucket(ctx, b, tr, newProgress(stderr), stderr, &st)
	})
	elapsed := time.Since(start).Round(time.Millisecond)
	fmt.Fprintf(stdout, "imported %d updates, skipped %d already in the store, %d unreadable, in %v\n", st.imported, st.skipped, st.invalid, elapsed)
	if err != nil {
		return err
	}
	if st.invalid > 0 {
		return fmt.Errorf("%d entries of %s could not be read (see above); the others were imported", st.invalid, src)
	}
	return nil
}

// importSyncBatch is how often a bolt store syncs its write-ahead log during an import, unless
// sync_interval is configured: syncing each update alone costs a disk flush per update, and an
// import that stops early is simply run again.
const importSyncBatch = 100 * time.Millisecond

// importSyncInterval returns the sync interval to open the store with: the configured one, or
// importSyncBatch for a bolt store whose URL does not set sync_interval itself. The store is
// synced in full when the import closes it.
func importSyncInterval(storeURL string, configured time.Duration) (time.Duration, error) {
	if configured != 0 {
		return configured, nil
	}
	u, err := url.Parse(storeURL)
	if err != nil {
		return 0, fmt.Errorf("transport_url %q: %w", redactURL(storeURL), err)
	}
	if u.Scheme != bolt.Scheme || u.Query().Has("sync_interval") {
		return 0, nil
	}
	return importSyncBatch, nil
}

// importBucket appends the entries of b, oldest first, to tr.
//
// Entries before the newest one the store already holds were imported by an earlier run (an
// import appends in order), even when the store's bounds have dropped them since: they are
// skipped without being appended again, which would put them after newer ones. That entry is
// found from the end, so a re-run costs one lookup per entry still to import.
func importBucket(ctx context.Context, b *bbolt.Bucket, tr transport.Transport, p *progress, stderr io.Writer, st *importStats) error {
	c := b.Cursor()
	total, resume := 0, []byte(nil) // resume: the key of the newest entry already in the store
	for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
		total++
		if resume != nil || len(k) <= 8 {
			continue
		}
		_, err := tr.Lookup(ctx, string(k[8:]))
		switch {
		case err == nil:
			resume = bytes.Clone(k)
		case !errors.Is(err, transport.ErrUnknownID):
			return fmt.Errorf("looking up %q in the store: %w", k[8:], err)
		}
	}
	p.start(total)
	defer p.finish()

	k, v := c.First()
	if resume != nil {
		for ; k != nil && bytes.Compare(k, resume) <= 0; k, v = c.Next() {
			st.skipped++
		}
		p.set(st.skipped)
	}
	for n := st.skipped; k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted (run the same command again to import the rest): %w", err)
		}
		n++
		u, err := decodeReferenceEntry(k, v)
		if err != nil {
			st.invalid++
			p.clear()
			fmt.Fprintf(stderr, "entry %d: %v\n", n, err)
			continue
		}
		err = tr.Append(ctx, u)
		switch {
		case err == nil:
			st.imported++
		case errors.Is(err, transport.ErrDuplicateID):
			st.skipped++
		default:
			return fmt.Errorf("appending update %q (entry %d): %w", u.ID, n, err)
		}
		p.set(n)
	}
	return nil
}

// decodeReferenceEntry turns one key and value of the reference hub's bucket into an update.
// The key is the 8-byte big-endian bucket sequence followed by the update's id.
func decodeReferenceEntry(k, v []byte) (*transport.Update, error) {
	if len(k) <= 8 {
		return nil, fmt.Errorf("key %x is not a sequence number followed by an id", k)
	}
	var ru referenceUpdate
	if err := json.Unmarshal(v, &ru); err != nil {
		return nil, fmt.Errorf("update %q: %w", k[8:], err)
	}
	if ru.ID == "" {
		ru.ID = string(k[8:])
	}
	if len(ru.Topics) == 0 {
		return nil, fmt.Errorf("update %q has no topic", ru.ID)
	}
	return &transport.Update{ID: ru.ID, Topics: ru.Topics, Private: ru.Private, Type: ru.Type, Retry: ru.Retry, Data: ru.Data}, nil
}

// bucketNames lists the top-level buckets of a bolt file, for an error message.
func bucketNames(tx *bbolt.Tx) string {
	var names []string
	_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		names = append(names, fmt.Sprintf("%q", name))
		return nil
	})
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// progress draws a progress bar on a terminal, at most ten times a second; elsewhere (a pipe,
// a log file) it draws nothing.
type progress struct {
	w      io.Writer // nil when not a terminal
	total  int
	done   int
	begun  time.Time
	drawn  time.Time
	shown  bool
	period time.Duration
}

func newProgress(w io.Writer) *progress {
	p := &progress{period: 100 * time.Millisecond}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.w = w
		}
	}
	return p
}

func (p *progress) start(total int) {
	p.total, p.begun = total, time.Now()
}

func (p *progress) set(done int) {
	p.done = done
	if p.w == nil || time.Since(p.drawn) < p.period {
		return
	}
	p.draw()
}

func (p *progress) draw() {
	const width = 30
	filled := width
	if p.total > 0 {
		filled = p.done * width / p.total
	}
	rate := float64(p.done) / max(time.Since(p.begun).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  %.0f/s ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.done, p.total, rate)
	p.drawn, p.shown = time.Now(), true
}

// clear removes the bar so that a message can be printed on its line.
func (p *progress) clear() {
	if p.w != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}
