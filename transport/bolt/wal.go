package bolt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The write-ahead log makes an append durable with one fdatasync of a sequential write, where a
// bbolt commit needs two (its pages, then its meta page) and rewrites every B+tree page it
// touches. Appends are acknowledged once they are in the log; the applier copies them into
// bbolt later, many per transaction.
//
// The log is two files used in turn. Each holds records back to back:
//
//	length  uint32  length of the payload
//	crc     uint32  CRC-32C of gen, seq and payload
//	gen     uint32  write generation (grows when a write fails and its space is reused)
//	seq     uint64  the update's Seq
//	payload         the update, encoded as in the seq bucket
//
// A file is written from its start again once every update in it is in bbolt, so old records
// follow the new ones. A scan stops at the first record that is not the continuation of the
// previous one (length zero, a bad checksum, a Seq that is not the previous one plus one, or a
// lower generation): old records always have lower Seqs, a torn write has a bad checksum.
const (
	walHeaderLen = 4 + 4 + 4 + 8
	// walChunk is how far ahead of the write position the file is filled with zeros, so that
	// fdatasync rarely has to record a new file size as well (it then costs about twice as much).
	walChunk = 1 << 20
	// walSwitchSize is the size at which appends move to the other file, once everything in
	// that one has reached bbolt.
	walSwitchSize = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walPaths names the two files of the log kept for the bucket of the bbolt file at path.
func walPaths(path, bucket string) [2]string {
	base := path + "-wal"
	if bucket != DefaultBucketName {
		base = path + "-" + hex.EncodeToString([]byte(bucket)) + "-wal"
	}
	return [2]string{base + "0", base + "1"}
}

// walRecord is one record found by a scan.
type walRecord struct {
	seq     uint64
	gen     uint32
	payload []byte
}

// walFile is one of the two files.
type walFile struct {
	f      *os.File
	off    int64  // where the next record goes
	size   int64  // bytes of the file already written (records or zeros)
	maxSeq uint64 // Seq of the last record written since the file was last reused; 0 if none
}

// wal is the write-ahead log. Only the committer goroutine uses it after Open.
type wal struct {
	files [2]walFile
	cur   int    // index of the file being appended to
	gen   uint32 // generation of the records being written
	buf   []byte // the batch being written
	zeros []byte
	// broken is set when the records of a failed write could not be erased: a later scan
	// could take them for acknowledged ones, so nothing more is written until a restart.
	broken error
}

// openWAL opens (creating them if needed) the two files and returns the records they hold
// with Seq greater than applied, in order. When fresh is true the files belong to no earlier
// log (the bbolt file was just created) and their content is ignored.
func openWAL(paths [2]string, applied uint64, fresh bool) (_ *wal, pending []walRecord, err error) {
	w := &wal{gen: 1}
	defer func() {
		if err != nil {
			_ = w.close()
		}
	}()
	created := false
	var runs [2][]walRecord
	for i, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open write-ahead log: %w", err)
		}
		w.files[i].f = f
		st, err := f.Stat()
		if err != nil {
			return nil, nil, fmt.Errorf("write-ahead log %s: %w", p, err)
		}
		w.files[i].size = st.Size()
		if st.Size() == 0 {
			created = true
		}
		if fresh {
			// Records left by an earlier file of the same name could look like the
			// continuation of the new log's: empty the files.
			if st.Size() > 0 {
				if err := f.Truncate(0); err != nil {
					return nil, nil, fmt.Errorf("empty write-ahead log %s: %w", p, err)
				}
				if err := f.Sync(); err != nil {
					return nil, nil, fmt.Errorf("empty write-ahead log %s: %w", p, err)
				}
				w.files[i].size = 0
			}
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read write-ahead log: %w", err)
		}
		runs[i] = scanWAL(data)
		for _, r := range runs[i] {
			w.gen = max(w.gen, r.gen+1)
		}
	}
	if created {
		if err := syncDir(filepath.Dir(paths[0])); err != nil {
			return nil, nil, fmt.Errorf("sync the directory of the write-ahead log: %w", err)
		}
	}
	// The file with the newest record was being appended to; the other one holds older
	// records, if any are not yet in bbolt.
	last := func(run []walRecord) uint64 {
		if len(run) == 0 {
			return 0
		}
		return run[len(run)-1].seq
	}
	older, newer := runs[0], runs[1]
	if last(runs[0]) > last(runs[1]) {
		older, newer = runs[1], runs[0]
	}
	next := applied + 1
	for _, run := range [][]walRecord{older, newer} {
		for _, r := range run {
			switch {
			case r.seq < next:
				continue // already in bbolt
			case r.seq > next:
				return nil, nil, fmt.Errorf("%w: write-ahead log lacks update %d (it has %d next)", errCorrupt, next, r.seq)
			}
			pending = append(pending, r)
			next++
		}
	}
	// Everything found is replayed into bbolt before the first append; then both files are
	// emptied (truncate) and writing starts over at the beginning of the first.
	return w, pending, nil
}

// scanWAL returns the run of consecutive records at the start of data.
func scanWAL(data []byte) []walRecord {
	var out []walRecord
	for off := 0; len(data)-off >= walHeaderLen; {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n == 0 || n > len(data)-off-walHeaderLen {
			break
		}
		body := data[off+8 : off+walHeaderLen+n]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[off+4:]) {
			break
		}
		r := walRecord{
			gen:     binary.LittleEndian.Uint32(body),
			seq:     binary.LittleEndian.Uint64(body[4:]),
			payload: body[12:],
		}
		if k := len(out); k > 0 && (r.seq != out[k-1].seq+1 || r.gen < out[k-1].gen) {
			break
		}
		out = append(out, r)
		off += walHeaderLen + n
	}
	return out
}

// add encodes one record into the batch being prepared.
func (w *wal) add(seq uint64, payload []byte) {
	start := len(w.buf)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(payload)))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, 0) // checksum, below
	w.buf = binary.LittleEndian.AppendUint32(w.buf, w.gen)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, seq)
	w.buf = append(w.buf, payload...)
	binary.LittleEndian.PutUint32(w.buf[start+4:], crc32.Checksum(w.buf[start+8:], castagnoli))
}

// reset drops the batch being prepared.
func (w *wal) reset() { w.buf = w.buf[:0] }

// room moves appends to the other file when the current one is large and every record of the
// other one is in bbolt (Seq at most applied).
func (w *wal) room(applied uint64) {
	cur := &w.files[w.cur]
	other := &w.files[1-w.cur]
	if cur.off >= walSwitchSize && other.maxSeq <= applied {
		other.off, other.maxSeq = 0, 0
		w.cur = 1 - w.cur
	}
}

// commit writes the prepared batch, whose last record has Seq last, and waits until it is on
// disk. On failure the space is zeroed where possible and reused by the next batch with a
// higher generation, so that a scan never takes the failed records for acknowledged ones.
func (w *wal) commit(last uint64, beforeSync func() error) error {
	defer w.reset()
	wf := &w.files[w.cur]
	end := wf.off + int64(len(w.buf))
	if w.broken != nil {
		return w.broken
	}
	err := w.write(wf, end, beforeSync)
	if err != nil {
		w.gen++
		clear(w.buf)
		_, zerr := wf.f.WriteAt(w.buf, wf.off)
		if zerr == nil {
			zerr = unix.Fdatasync(int(wf.f.Fd()))
		}
		if zerr != nil {
			w.broken = fmt.Errorf("write-ahead log unusable until the hub restarts: a failed write could not be erased (%w) after: %w", zerr, err)
			return w.broken
		}
		return err
	}
	wf.off = end
	wf.maxSeq = last
	return nil
}

func (w *wal) write(wf *walFile, end int64, beforeSync func() error) error {
	if end > wf.size {
		// Extend with zeros a chunk ahead, in the same fdatasync as the records.
		size := (end/walChunk + 1) * walChunk
		if w.zeros == nil {
			w.zeros = make([]byte, walChunk)
		}
		for off := wf.size; off < size; {
			n, err := wf.f.WriteAt(w.zeros[:min(int64(len(w.zeros)), size-off)], off)
			if err != nil {
				return fmt.Errorf("extend write-ahead log: %w", err)
			}
			off += int64(n)
		}
		wf.size = size
	}
	if _, err := wf.f.WriteAt(w.buf, wf.off); err != nil {
		return fmt.Errorf("write to write-ahead log: %w", err)
	}
	if beforeSync != nil {
		if err := beforeSync(); err != nil {
			return err
		}
	}
	if err := unix.Fdatasync(int(wf.f.Fd())); err != nil {
		return fmt.Errorf("sync write-ahead log: %w", err)
	}
	return nil
}

// truncate empties both files, once bbolt holds every update they have: Open does it after
// replaying them, Close after its last commit to bbolt (the next Open then has nothing to
// scan). Appends start over at the beginning of the first file.
func (w *wal) truncate() error {
	for i := range w.files {
		wf := &w.files[i]
		if err := wf.f.Truncate(0); err != nil {
			return fmt.Errorf("empty write-ahead log: %w", err)
		}
		if err := wf.f.Sync(); err != nil {
			return fmt.Errorf("empty write-ahead log: %w", err)
		}
		wf.off, wf.size, wf.maxSeq = 0, 0, 0
	}
	w.cur = 0
	return nil
}

// close closes both files.
func (w *wal) close() error {
	var errs []error
	for i := range w.files {
		if f := w.files[i].f; f != nil {
			if err := f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
