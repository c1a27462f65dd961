package nats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/codec"
	"github.com/heraldhub/herald/transport/internal/gate"
	"github.com/heraldhub/herald/transport/internal/tail"
)

// Defaults for Options' zero values.
const (
	DefaultServer   = "nats://127.0.0.1:4222"
	DefaultStream   = "herald"
	DefaultSize     = 100_000
	DefaultMaxBytes = 256 << 20
	DefaultReplicas = 1
	DefaultTimeout  = 5 * time.Second
	// Defaults of the share of system updates (see Options.SystemSize).
	DefaultSystemSize     = 10_000
	DefaultSystemMaxBytes = 16 << 20
)

// Storage says where JetStream keeps the stream.
type Storage string

// Storage types.
const (
	FileStorage   Storage = "file"   // on disk: survives a restart of the NATS server (the default)
	MemoryStorage Storage = "memory" // in the server's memory: lost when every replica restarts
)

// Options configure Open. Zero values take the defaults above.
type Options struct {
	// Servers are the URLs of the NATS servers to connect to (nats://host:port), without
	// credentials. Default nats://127.0.0.1:4222. Other servers of a NATS cluster are found
	// by the client itself.
	Servers []string
	// Username and Password authenticate with user and password; Token with a token (when
	// Password is empty, a lone user name in a URL is a token, as for nats.go).
	Username, Password, Token string
	// CredsFile is a NATS credentials file (JWT and NKey seed), as for `nats --creds`.
	CredsFile string
	// Stream is the JetStream stream holding the log. Default "herald".
	Stream string
	// Subject is the subject prefix of the stream's messages: an update is published on
	// Subject + ".id." + a hash of its ID. Default: the stream name.
	Subject string
	// Size is the number of updates kept for history (the stream's MaxMsgs). Default 100 000.
	Size int
	// MaxBytes bounds the stream's size in bytes as JetStream counts it (the stream's
	// MaxBytes: message data plus its subject and headers). Default 256 MiB.
	MaxBytes int64
	// SystemSize is the number of system updates (subscription events, hub-to-hub control
	// updates) kept apart from Size, on as many slot subjects (see system.go); the stream's
	// MaxMsgs is Size + SystemSize, so they never push publishers' updates out, and while
	// fewer system updates are retained publishers' updates may use the rest. Negative: system
	// updates are stored like the others, within Size (only sensible without subscription
	// events, for a Size that is exact). Default 10 000.
	SystemSize int
	// SystemMaxBytes is what the stream's MaxBytes adds to MaxBytes for system updates, with
	// SystemSize > 0. Default 16 MiB.
	SystemMaxBytes int64
	// Replicas is the number of copies JetStream keeps of the stream (1 to 5; more than 1
	// needs a clustered JetStream). Default 1.
	Replicas int
	// Storage is where JetStream keeps the stream. Default FileStorage.
	Storage Storage
	// Timeout bounds every request to NATS (and the dial): past it the call fails with
	// transport.ErrUnavailable. Default 5 s.
	Timeout time.Duration
	// Logger receives connection losses, recoveries and warnings. Nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Size < 0:
		return o, fmt.Errorf("nats: size must not be negative, got %d", o.Size)
	case o.MaxBytes < 0:
		return o, fmt.Errorf("nats: max bytes must not be negative, got %d", o.MaxBytes)
	case o.SystemMaxBytes < 0:
		return o, fmt.Errorf("nats: system max bytes must not be negative, got %d", o.SystemMaxBytes)
	case o.Timeout < 0:
		return o, fmt.Errorf("nats: timeout must not be negative, got %v", o.Timeout)
	case o.Replicas < 0 || o.Replicas > 5:
		return o, fmt.Errorf("nats: replicas must be between 1 and 5, got %d", o.Replicas)
	case o.Storage != "" && o.Storage != FileStorage && o.Storage != MemoryStorage:
		return o, fmt.Errorf("nats: storage must be %q or %q, got %q", FileStorage, MemoryStorage, o.Storage)
	}
	if len(o.Servers) == 0 {
		o.Servers = []string{DefaultServer}
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if err := checkStreamName(o.Stream); err != nil {
		return o, err
	}
	if o.Subject == "" {
		o.Subject = o.Stream
	}
	if err := checkSubject(o.Subject); err != nil {
		return o, err
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.SystemSize == 0 {
		o.SystemSize = DefaultSystemSize
	}
	if o.SystemMaxBytes == 0 {
		o.SystemMaxBytes = DefaultSystemMaxBytes
	}
	if o.Storage == "" {
		o.Storage = FileStorage
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// redactServers joins server URLs for logs and errors, without passwords.
func redactServers(servers []string) string {
	out := make([]string, len(servers))
	for i, s := range servers {
		if u, err := url.Parse(s); err == nil {
			out[i] = u.Redacted()
		} else {
			out[i] = "(unparsable URL)"
		}
	}
	return strings.Join(out, ",")
}

// checkStreamName applies JetStream's rules for stream names.
func checkStreamName(name string) error {
	if i := strings.IndexFunc(name, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r)
	}); i >= 0 {
		return fmt.Errorf("nats: stream name %q: %q is not allowed (no spaces, '.', '*', '>', '/' or '\\')", name, name[i:i+1])
	}
	return nil
}

// checkSubject accepts a subject of literal tokens.
func checkSubject(subject string) error {
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("nats: subject %q: want dot-separated tokens without spaces or wildcards", subject)
		}
	}
	return nil
}

// Transport is the NATS JetStream log. Create it with Open.
type Transport struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	opts   Options
	prefix string // subject prefix of updates: Subject + ".id."
	log    *slog.Logger
	tail   *tail.Tail

	sysPrefix string        // subject prefix of the slots of system updates: Subject + ".sys."
	slot      atomic.Uint64 // this node's next slot (modulo SystemSize), from a random one
	sys       *sysIndex     // the system updates the watcher delivered, by ID

	gate gate.Gate // closed state; Close waits for the Appends in flight

	msgs      jetstream.MessagesContext // the watcher's ordered consumer
	done      chan struct{}             // closed when the watcher has returned
	closeOnce sync.Once
}

var _ transport.Transport = (*Transport)(nil)

// Open connects to NATS, creates the stream (or checks it and updates its limits and
// replicas to the options) and starts tailing it with an ordered consumer. It fails with an
// error wrapping transport.ErrUnavailable when no server can be reached within
// Options.Timeout or JetStream does not answer.
func Open(ctx context.Context, opts Options) (*Transport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	servers := redactServers(opts.Servers)
	log := opts.Logger.With("transport", "nats", "servers", servers, "stream", opts.Stream)
	nopts := []nats.Option{
		nats.Name("herald"),
		nats.Timeout(opts.Timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Never hold publishes while disconnected: they fail at once (503) rather than
		// being sent after the caller was told they failed.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	}
	switch {
	case opts.Token != "":
		nopts = append(nopts, nats.Token(opts.Token))
	case opts.Username != "" || opts.Password != "":
		nopts = append(nopts, nats.UserInfo(opts.Username, opts.Password))
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	nc, err := nats.Connect(strings.Join(opts.Servers, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w: %w", servers, transport.ErrUnavailable, err)
	}
	t := &Transport{
		nc:        nc,
		opts:      opts,
		prefix:    opts.Subject + ".id.",
		sysPrefix: opts.Subject + ".sys.",
		log:       log,
		done:      make(chan struct{}),
	}
	t.slot.Store(rand.Uint64())
	head, err := t.init(ctx)
	if err != nil {
		nc.Close()
		return nil, err
	}
	log.Debug("opened", "head", head)
	return t, nil
}

// init creates or checks the stream and starts the watcher; it returns the head.
func (t *Transport) init(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	js, err := jetstream.New(t.nc)
	if err != nil {
		return 0, fmt.Errorf("nats: %w", err)
	}
	t.js = js
	want := jetstream.StreamConfig{
		Name:        t.opts.Stream,
		Description: "Herald update log",
		Subjects:    []string{t.prefix + "*", t.sysPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     int64(t.opts.Size),
		MaxBytes:    t.opts.MaxBytes,
		// A publishers' update has a subject of its own; a system update replaces the one
		// in its slot.
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          t.opts.Replicas,
		AllowDirect:       true, // Lookup reads the last message of a subject from any replica
		DenyDelete:        true, // the log only loses updates from its front, by the limits
	}
	if t.opts.Storage == MemoryStorage {
		want.Storage = jetstream.MemoryStorage
	}
	if t.opts.SystemSize > 0 {
		want.MaxMsgs += int64(t.opts.SystemSize)
		want.MaxBytes += t.opts.SystemMaxBytes
	}
	stream, err := js.Stream(ctx, t.opts.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		stream, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another node created it meanwhile
			stream, err = js.Stream(ctx, t.opts.Stream)
		}
		if err != nil {
			return 0, t.unavailable("create the stream", err)
		}
		t.log.Info("created the stream", "size", t.opts.Size, "max_bytes", t.opts.MaxBytes, "replicas", t.opts.Replicas, "storage", t.opts.Storage)
	case err != nil:
		return 0, t.unavailable("look up the stream", err)
	default:
		if stream, err = t.adopt(ctx, stream, want); err != nil {
			return 0, err
		}
	}
	t.stream = stream
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, t.unavailable("stream info", err)
	}
	head := info.State.LastSeq
	t.tail = tail.New(head)
	t.sys = newSysIndex(max(t.opts.SystemSize, 1), head)

	// The watcher: an ordered consumer from the head on. It recreates itself after a lost
	// connection or a missed message, resuming after the last update it delivered.
	cons, err := js.OrderedConsumer(ctx, t.opts.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   head + 1,
	})
	if err != nil {
		return 0, t.unavailable("create the ordered consumer", err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return 0, t.unavailable("start the ordered consumer", err)
	}
	t.msgs = msgs
	go t.watch(head)
	return head, nil
}

// adopt checks that an existing stream is a Herald log with the same subjects and storage,
// and updates its limits and replicas when they differ from the options.
func (t *Transport) adopt(ctx context.Context, stream jetstream.Stream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	have := stream.CachedInfo().Config
	// A stream made before system updates had their slots has the first subject only.
	if !slices.Equal(have.Subjects, want.Subjects) && !slices.Equal(have.Subjects, want.Subjects[:1]) {
		return nil, fmt.Errorf("nats: stream %s has subjects %q, not the %q of a Herald log (choose another stream name or subject)", t.opts.Stream, have.Subjects, want.Subjects)
	}
	if have.Storage != want.Storage {
		return nil, fmt.Errorf("nats: stream %s uses %s storage, not %s (JetStream cannot change it: delete the stream or choose another name)", t.opts.Stream, have.Storage, want.Storage)
	}
	if have.Retention != jetstream.LimitsPolicy || have.Discard != jetstream.DiscardOld {
		return nil, fmt.Errorf("nats: stream %s is not a limits stream that discards old messages: not a Herald log", t.opts.Stream)
	}
	if have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes && have.Replicas == want.Replicas && have.AllowDirect &&
		slices.Equal(have.Subjects, want.Subjects) && have.MaxMsgsPerSubject == want.MaxMsgsPerSubject {
		return stream, nil
	}
	upd := have
	upd.MaxMsgs, upd.MaxBytes, upd.Replicas, upd.AllowDirect = want.MaxMsgs, want.MaxBytes, want.Replicas, true
	upd.Subjects, upd.MaxMsgsPerSubject = want.Subjects, want.MaxMsgsPerSubject
	stream, err := t.js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, t.unavailable("update the stream's limits", err)
	}
	t.log.Info("updated the stream's limits", "size", want.MaxMsgs, "max_bytes", want.MaxBytes, "replicas", want.Replicas)
	return stream, nil
}

func (t *Transport) unavailable(what string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code != 503 && apiErr.Code != 408 {
		// An answer of JetStream that a retry will not change (bad configuration, no
		// permission…).
		return fmt.Errorf("nats: %s: %w", what, err)
	}
	return fmt.Errorf("nats: %s: %w: %w", what, transport.ErrUnavailable, err)
}

// fail turns an error of a request to NATS into the error the Transport returns: ErrClosed
// once closed, the caller's context error when its context ended, else ErrUnavailable.
func (t *Transport) fail(ctx context.Context, what string, err error) error {
	switch {
	case t.gate.Closed():
		return transport.ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("nats: %s: %w", what, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("nats: %s: %w: no answer within %v (%w)", what, transport.ErrUnavailable, t.opts.Timeout, err)
	}
	return t.unavailable(what, err)
}

func (t *Transport) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.opts.Timeout)
}

// subject is the subject of the update with this ID: the prefix and a 128-bit hash of the ID
// in base64url, so that any ID makes a valid, short subject token.
func (t *Transport) subject(id string) string {
	sum := sha256.Sum256([]byte(id))
	return t.prefix + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Append implements transport.Transport: one publish, on the update's own subject, that
// JetStream stores only if no message of that subject is retained
// (Nats-Expected-Last-Subject-Sequence: 0). The Seq is the stream sequence from the ack.
func (t *Transport) Append(ctx context.Context, u *transport.Update) error {
	if u.ID == "" {
		return errors.New("nats: append: the update has no id")
	}
	if err := t.gate.Enter(); err != nil {
		return err
	}
	defer t.gate.Leave()
	if u.System && t.opts.SystemSize > 0 {
		return t.appendSystem(ctx, u)
	}
	if _, ok := t.sys.lookup(u.ID); ok {
		return fmt.Errorf("nats: append %q (a system update has it): %w", u.ID, transport.ErrDuplicateID)
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	ack, err := t.publish(ctx, cctx, u.ID, &nats.Msg{Subject: t.subject(u.ID), Data: codec.Encode(u)}, jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil {
		return err
	}
	u.Seq = ack.Sequence
	return nil
}

// publish publishes the message of update id within cctx, turning a refused expectation into
// ErrDuplicateID and other failures into the Transport's errors for the caller's ctx.
func (t *Transport) publish(ctx, cctx context.Context, id string, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if limit := t.nc.MaxPayload(); int64(len(msg.Data)) > limit-256 {
		return nil, fmt.Errorf("nats: append %q: the update takes %d bytes, more than the server's max_payload (%d) allows", id, len(msg.Data), limit)
	}
	ack, err := t.js.PublishMsg(cctx, msg, opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return nil, fmt.Errorf("nats: append %q (%s): %w", id, apiErr.Description, transport.ErrDuplicateID)
		}
		return nil, t.fail(ctx, fmt.Sprintf("append %q", id), err)
	}
	return ack, nil
}

// Read implements transport.Transport. Without wait it reads the stream from the server.
// With wait it serves the updates this node's ordered consumer has delivered when they
// follow after, reads the server when after is older than those, and otherwise waits for the
// consumer.
func (t *Transport) Read(ctx context.Context, after uint64, limit int, wait bool) ([]*transport.Update, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("nats: read: limit must be positive, got %d", limit)
	}
	if t.gate.Closed() {
		return nil, transport.ErrClosed
	}
	if !wait {
		return t.read(ctx, after, limit)
	}
	return t.tail.Read(ctx, after, limit, t.read)
}

// read returns up to limit updates after the given Seq from the server, through a
// short-lived consumer that starts there (JetStream moves its start to the oldest retained
// message when after+1 is gone).
func (t *Transport) read(ctx context.Context, after uint64, limit int) ([]*transport.Update, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	cons, err := t.js.CreateConsumer(cctx, t.opts.Stream, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: 30 * time.Second, // the server removes it if the delete below fails
	})
	if err != nil {
		return nil, t.fail(ctx, fmt.Sprintf("read after %d", after), err)
	}
	defer t.deleteConsumer(cons.CachedInfo().Name)
	batch, err := cons.FetchNoWait(limit)
	if err != nil {
		return nil, t.fail(ctx, fmt.Sprintf("read after %d", after), err)
	}
	var ups []*transport.Update
	for msg := range batch.Messages() {
		u, err := decodeMsg(msg)
		if err != nil {
			return nil, fmt.Errorf("nats: read after %d: %w", after, err)
		}
		ups = append(ups, u)
	}
	if err := batch.Error(); err != nil {
		return nil, t.fail(ctx, fmt.Sprintf("read after %d", after), err)
	}
	return ups, nil
}

// deleteConsumer removes a read's consumer.
func (t *Transport) deleteConsumer(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
	defer cancel()
	if err := t.js.DeleteConsumer(ctx, t.opts.Stream, name); err != nil && !t.gate.Closed() {
		t.log.Debug("deleting a read's consumer failed; the server removes it after 30 s", "consumer", name, "err", err)
	}
}

func decodeMsg(msg jetstream.Msg) (*transport.Update, error) {
	md, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	u, err := codec.Decode(md.Sequence.Stream, string(msg.Data()))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return u, nil
}

// Lookup implements transport.Transport: the last message of the ID's subject (a direct get),
// which exists only while the update is retained.
func (t *Transport) Lookup(ctx context.Context, id string) (uint64, error) {
	if t.gate.Closed() {
		return 0, transport.ErrClosed
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	seq, err := t.lookupSubject(cctx, id)
	switch {
	case errors.Is(err, transport.ErrUnknownID) && t.opts.SystemSize > 0:
		return t.lookupSystem(ctx, cctx, id)
	case err != nil && !errors.Is(err, transport.ErrUnknownID):
		return 0, t.fail(ctx, fmt.Sprintf("lookup %q", id), err)
	}
	return seq, err
}

// lookupSubject returns the Seq of the retained update on the subject of id; its errors are
// ErrUnknownID or the server's.
func (t *Transport) lookupSubject(ctx context.Context, id string) (uint64, error) {
	msg, err := t.stream.GetLastMsgForSubject(ctx, t.subject(id))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, fmt.Errorf("nats: lookup %q: %w", id, transport.ErrUnknownID)
	case err != nil:
		return 0, err
	}
	if got, ok := codec.DecodeID(string(msg.Data)); !ok || got != id {
		// A hash collision (or a foreign message): the ID itself is not retained.
		return 0, fmt.Errorf("nats: lookup %q: %w", id, transport.ErrUnknownID)
	}
	return msg.Sequence, nil
}

// Head implements transport.Transport: the stream's last sequence.
func (t *Transport) Head(ctx context.Context) (uint64, error) {
	if t.gate.Closed() {
		return 0, transport.ErrClosed
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	info, err := t.stream.Info(cctx)
	if err != nil {
		return 0, t.fail(ctx, "head", err)
	}
	return info.State.LastSeq, nil
}

// watch feeds the tail with what the ordered consumer delivers, until Close stops it.
func (t *Transport) watch(last uint64) {
	defer close(t.done)
	for {
		msg, err := t.msgs.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			if t.gate.Closed() {
				return
			}
			t.log.Warn("tailing the stream failed; retrying", "after", last, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		u, err := decodeMsg(msg)
		if err != nil {
			t.log.Error("skipping an unreadable message", "err", err)
			continue
		}
		last = u.Seq
		t.sys.delivered(u) // before the tail: whoever is served it finds it in Lookup
		// The tail is not told which updates the limits dropped (JetStream counts bytes its
		// own way, and another node may have set other limits): a waiting reader far behind
		// may still get a few just dropped, rather than miss retained ones.
		t.tail.Push([]*transport.Update{u}, 0)
	}
}

// Close implements transport.Transport: waiting Reads return ErrClosed, Appends in flight
// finish, then the consumer stops and the connection closes. Later calls return nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.gate.Close()
		t.tail.Close()
		t.gate.Wait()
		t.msgs.Stop()
		<-t.done
		t.sys.close()
		t.nc.Close()
	})
	return nil
}
