package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// The worker protocol, one JSON object per line. The parent writes a workerCmd with the
// Spec, later one with Stop (closing the worker's standard input also stops it). The worker
// answers workerMsgs: "ready" once its subscribers are connected, "progress" every
// progressEvery, and "result" after stopping, then exits.
type workerCmd struct {
	Spec      *groupSpec `json:"spec,omitempty"`
	Stop      bool       `json:"stop,omitempty"`
	Published []int64    `json:"published,omitempty"`
}

type workerMsg struct {
	Type      string       `json:"type"` // ready, progress, result
	Ready     *readyInfo   `json:"ready,omitempty"`
	Unique    int64        `json:"unique,omitempty"`
	Connected int64        `json:"connected,omitempty"`
	Result    *groupResult `json:"result,omitempty"`
}

const progressEvery = 100 * time.Millisecond

// RunWorker is the worker process's side of Options.Procs (`herald bench worker`): it reads
// its share of subscribers from in, runs them, and reports on out, as JSON lines.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	RaiseFileLimit()
	dec := json.NewDecoder(in)
	var first workerCmd
	if err := dec.Decode(&first); err != nil {
		return fmt.Errorf("reading the job: %w", err)
	}
	if first.Spec == nil || first.Spec.Count <= 0 || first.Spec.streams() == 0 {
		return errors.New("the job has no subscribers")
	}
	g := newLocalGroup(*first.Spec)
	defer g.close()

	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m workerMsg) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(m)
	}
	cmds := make(chan workerCmd, 1)
	go func() {
		var c workerCmd
		if err := dec.Decode(&c); err != nil {
			c = workerCmd{Stop: true} // the parent went away
		}
		cmds <- c
	}()
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	opened := make(chan readyInfo, 1)
	go func() {
		info, _ := g.open(octx)
		opened <- info
	}()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	openDone := false
	for {
		select {
		case info := <-opened:
			openDone = true
			if err := send(workerMsg{Type: "ready", Ready: &info}); err != nil {
				return err
			}
		case <-tick.C:
			u, c := g.progress()
			if err := send(workerMsg{Type: "progress", Unique: u, Connected: c}); err != nil {
				return err
			}
		case c := <-cmds:
			return finishWorker(g, ocancel, opened, openDone, c.Published, send)
		case <-ctx.Done():
			return finishWorker(g, ocancel, opened, openDone, nil, send)
		}
	}
}

func finishWorker(g *localGroup, ocancel context.CancelFunc, opened chan readyInfo, openDone bool, published []int64, send func(workerMsg) error) error {
	ocancel()
	if !openDone {
		<-opened
	}
	res, err := g.stop(published)
	if err != nil {
		return err
	}
	return send(workerMsg{Type: "result", Result: &res})
}

// remoteGroup is a share of subscribers run by a worker process.
type remoteGroup struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan readyInfo
	result chan groupResult
	exited chan struct{} // closed when the worker's output ended
	errMu  sync.Mutex
	err    error // why the output ended early

	unique, connected atomic.Int64
	closeOnce         sync.Once
}

// defaultWorkerCommand re-executes this binary as `herald bench worker`.
func defaultWorkerCommand() *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, "bench", "worker")
}

// startWorker starts a worker process with its share of subscribers.
func startWorker(o *Options, spec groupSpec) (*remoteGroup, error) {
	mk := o.WorkerCommand
	if mk == nil {
		mk = defaultWorkerCommand
	}
	cmd := mk()
	cmd.Stderr = o.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a worker process: %w", err)
	}
	g := &remoteGroup{cmd: cmd, stdin: stdin, ready: make(chan readyInfo, 1), result: make(chan groupResult, 1), exited: make(chan struct{})}
	go g.read(stdout)
	if err := json.NewEncoder(stdin).Encode(workerCmd{Spec: &spec}); err != nil {
		g.close()
		return nil, fmt.Errorf("sending the job to a worker: %w", err)
	}
	return g, nil
}

// read decodes the worker's messages until its output ends.
func (g *remoteGroup) read(r io.Reader) {
	defer close(g.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			g.setErr(fmt.Errorf("a worker wrote %q: %w", truncate(sc.Text(), 200), err))
			continue
		}
		switch m.Type {
		case "ready":
			if m.Ready != nil {
				g.connected.Store(int64(m.Ready.Connected))
				g.ready <- *m.Ready
			}
		case "progress":
			g.unique.Store(m.Unique)
			g.connected.Store(m.Connected)
		case "result":
			if m.Result != nil {
				g.result <- *m.Result
			}
		}
	}
	if err := sc.Err(); err != nil {
		g.setErr(err)
	}
}

func (g *remoteGroup) setErr(err error) {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	if g.err == nil {
		g.err = err
	}
}

// exitError explains why a worker's output ended before the expected message.
func (g *remoteGroup) exitError(waiting string) error {
	g.errMu.Lock()
	err := g.err
	g.errMu.Unlock()
	if err != nil {
		return fmt.Errorf("worker process: %w", err)
	}
	return fmt.Errorf("the worker process ended before its %s", waiting)
}

func (g *remoteGroup) open(ctx context.Context) (readyInfo, error) {
	select {
	case r := <-g.ready:
		return r, nil
	case <-g.exited:
		select {
		case r := <-g.ready:
			return r, nil
		default:
		}
		return readyInfo{}, g.exitError("subscribers connected")
	case <-ctx.Done():
		return readyInfo{Connected: int(g.connected.Load())}, nil
	}
}

func (g *remoteGroup) progress() (int64, int64) { return g.unique.Load(), g.connected.Load() }

// stopWait bounds how long a worker may take to report after being told to stop.
const stopWait = 30 * time.Second

func (g *remoteGroup) stop(published []int64) (groupResult, error) {
	defer g.close()
	if err := json.NewEncoder(g.stdin).Encode(workerCmd{Stop: true, Published: published}); err != nil {
		return groupResult{}, fmt.Errorf("telling a worker to stop: %w", err)
	}
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case r := <-g.result:
		return r, nil
	case <-g.exited:
		select {
		case r := <-g.result:
			return r, nil
		default:
		}
		return groupResult{}, g.exitError("result")
	case <-t.C:
		return groupResult{}, errors.New("a worker process did not report within 30s")
	}
}

// close ends the worker: its standard input closes (it stops), then it is killed if it has
// not exited within a few seconds, and waited for.
func (g *remoteGroup) close() {
	g.closeOnce.Do(func() {
		_ = g.stdin.Close()
		t := time.NewTimer(5 * time.Second)
		select {
		case <-g.exited:
		case <-t.C:
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
		t.Stop()
		_ = g.cmd.Wait()
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
