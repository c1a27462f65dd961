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
// Seqs that are never stored (those of system updates, kept in memory only, and of failed
// appends) are covered by a skip record: a payload of one zero byte (an update's payload
// starts with its format version, never zero) then the uvarint of the last skipped Seq; its
// own Seq is the first skipped one. So every Seq after bbolt's head is accounted for, and a
// record lost from the middle of the log is still detected at Open.
//
// A file is written from its start again once every update in it is in bbolt, so old records
// follow the new ones. A scan stops at the first record that is not the continuation of the
// previous one (length zero, a bad checksum, a Seq that is not the one after the previous
// record or skip, or a lower generation): old records always have lower Seqs, a torn write
// has a bad checksum.
//
// # Syncing later (Options.SyncInterval)
//
// By default every batch is synced before it is acknowledged. With a sync interval a batch is
// acknowledged once write(2) has put it in the page cache, and the committer syncs the file at
// most an interval after the first write it has not synced. A process crash then loses
// nothing (the kernel still writes the page cache out); a power loss or a kernel crash loses at
// most the updates written since the last sync. Recovery still finds a prefix of the
// acknowledged updates, with no gap, because:
//
//   - Only the file being appended to holds writes that are not synced: the committer syncs it
//     before appends move to the other file. So the older file's records all survive.
//   - In the file being appended to, whatever survives of the unsynced writes, in whatever
//     order the kernel wrote its pages, a scan from the start stops at the first record that
//     did not: what lies there is zeros, a torn record or a record of an earlier use of the
//     file, with a lower Seq. The run a scan finds is a prefix of what was written.
//   - bbolt may hold updates that the log lost: the applier commits acknowledged updates
//     without waiting for the log's sync. That is safe, and better than waiting: a bbolt
//     commit is durable by itself (it syncs), and Open skips the log's records up to bbolt's
//     head. A file is reused only once bbolt holds every update in it, so a surviving run
//     of an earlier use is skipped whole, and a run of the current use starts right after
//     the older file's last record. After a power loss the store therefore holds every
//     update up to the later of bbolt's head and the end of the log's surviving run, and
//     nothing after it. Syncing the log before each bbolt commit would only delay the commit
//     that makes those updates durable anyway.
//
// A sync that fails leaves the kernel's copy of the unsynced pages in doubt, so the log then
// refuses every later append until a restart, as after a failed write it could not erase; the
// acknowledged updates stay in memory and reach bbolt through the applier. Close syncs too.
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
	skipTo  uint64 // for a skip record, the last Seq it covers; else 0
}

// walSkip is the first byte of a skip record's payload.
const walSkip = 0

// next returns the Seq that the record after r has.
func (r walRecord) next() uint64 {
	if r.skipTo != 0 {
		return r.skipTo + 1
	}
	return r.seq + 1
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
	// dirty is set when files[cur] holds writes not yet synced (only with a sync interval).
	dirty bool
	// broken is set when the records of a failed write could not be erased (a later scan
	// could take them for acknowledged ones) or when a sync failed: nothing more is written
	// until a restart.
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
			case r.next() <= next:
				continue // already in bbolt, or skipped before it
			case r.skipTo != 0:
				if r.seq > next {
					return nil, nil, fmt.Errorf("%w: write-ahead log lacks update %d (it skips from %d next)", errCorrupt, next, r.seq)
				}
			case r.seq != next:
				return nil, nil, fmt.Errorf("%w: write-ahead log lacks update %d (it has %d next)", errCorrupt, next, r.seq)
			default:
				pending = append(pending, r)
			}
			next = r.next()
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
		if r.payload[0] == walSkip {
			to, m := binary.Uvarint(r.payload[1:])
			if m <= 0 || 1+m != len(r.payload) || to < r.seq {
				break
			}
			r.skipTo = to
		}
		if k := len(out); k > 0 && (r.seq != out[k-1].next() || r.gen < out[k-1].gen) {
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

// skip encodes into the batch a skip record for the Seqs from to to, none of which is stored.
func (w *wal) skip(from, to uint64) {
	w.add(from, binary.AppendUvarint([]byte{walSkip}, to))
}

// reset drops the batch being prepared.
func (w *wal) reset() { w.buf = w.buf[:0] }

// room moves appends to the other file when the current one is large and every record of the
// other one is in bbolt (Seq at most applied). It syncs the current file first, so that a
// power loss cannot leave a gap between the two files' records: sync is the owner's wrapper
// of w.sync.
func (w *wal) room(applied uint64, sync func() error) error {
	cur := &w.files[w.cur]
	other := &w.files[1-w.cur]
	if cur.off >= walSwitchSize && other.maxSeq <= applied {
		if err := sync(); err != nil {
			return err
		}
		other.off, other.maxSeq = 0, 0
		w.cur = 1 - w.cur
	}
	return nil
}

// sync makes the writes not yet synced durable, and reports whether there were any. A failure
// breaks the log: the kernel may have dropped the pages it could not write.
func (w *wal) sync(beforeSync func() error) (bool, error) {
	if !w.dirty || w.broken != nil {
		return false, nil
	}
	w.dirty = false
	err := error(nil)
	if beforeSync != nil {
		err = beforeSync()
	}
	if err == nil {
		err = datasync(w.files[w.cur].f)
	}
	if err != nil {
		w.broken = fmt.Errorf("write-ahead log unusable until the hub restarts: a sync failed, acknowledged updates written since the previous one may not be on disk: %w", err)
		return false, w.broken
	}
	return true, nil
}

// commit writes the prepared batch, whose last record has Seq last. With durable set it waits
// until the batch is on disk; otherwise the batch is in the page cache and a later sync takes
// it there. On failure the space is zeroed where possible and reused by the next batch with a
// higher generation, so that a scan never takes the failed records for acknowledged ones.
func (w *wal) commit(last uint64, durable bool, beforeSync func() error) error {
	defer w.reset()
	wf := &w.files[w.cur]
	end := wf.off + int64(len(w.buf))
	if w.broken != nil {
		return w.broken
	}
	err := w.write(wf, end, durable, beforeSync)
	if err != nil {
		w.gen++
		clear(w.buf)
		_, zerr := wf.f.WriteAt(w.buf, wf.off)
		if zerr == nil {
			zerr = datasync(wf.f)
		}
		if zerr != nil {
			w.broken = fmt.Errorf("write-ahead log unusable until the hub restarts: a failed write could not be erased (%w) after: %w", zerr, err)
			return w.broken
		}
		w.dirty = false // the erasing sync took the earlier writes to disk too
		return err
	}
	wf.off = end
	wf.maxSeq = last
	if !durable {
		w.dirty = true
	}
	return nil
}

func (w *wal) write(wf *walFile, end int64, durable bool, beforeSync func() error) error {
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
	if !durable {
		return nil
	}
	if beforeSync != nil {
		if err := beforeSync(); err != nil {
			return err
		}
	}
	if err := datasync(wf.f); err != nil {
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
	w.cur, w.dirty = 0, false
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
