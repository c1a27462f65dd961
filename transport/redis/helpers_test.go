package redis

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/rueidis"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/codec"
	"github.com/heraldhub/herald/transport/memory"
)

type rueidisExec = rueidis.LuaExec

// appendExec returns the script call that Append makes for u.
func (t *Transport) appendExec(u *transport.Update) rueidis.LuaExec {
	return rueidis.LuaExec{Keys: t.keys, Args: []string{u.ID, codec.EncodeString(u), strconv.FormatInt(memory.Cost(u), 10), t.size, t.max, "0", "0", t.sys}}
}

// bulk runs many appends pipelined, to build a large log quickly.
func (t *Transport) bulk(tb testing.TB, execs []rueidis.LuaExec) {
	tb.Helper()
	for len(execs) > 0 {
		n := min(len(execs), 1000)
		for i, r := range appendScript.ExecMulti(context.Background(), t.c, execs[:n]...) {
			if err := r.Error(); err != nil {
				tb.Fatalf("bulk append %d: %v", i, err)
			}
		}
		execs = execs[n:]
	}
}
