package bench_test

import (
	"context"
	"testing"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/server"
)

// newDraft08Herald starts a Herald hub that trusts bench.DefaultIssuer with the test key.
func newDraft08Herald(t *testing.T) string {
	return newHerald(t, func(c *server.Config) {
		is, err := auth.NewIssuers([]auth.Issuer{{ID: bench.DefaultIssuer, Publisher: c.Publisher, Subscriber: c.Subscriber}})
		if err != nil {
			t.Fatal(err)
		}
		c.Issuers = is
	})
}

// The fan-out and catch-up scenarios in the draft-08 dialect: subscribers use match=, and
// the minted tokens are draft-08 access tokens; every delivery is checked as in 0.x.
func TestDraft08Dialect(t *testing.T) {
	u := newDraft08Herald(t)
	o := opts(u)
	o.Dialect = bench.Dialect08
	res, err := bench.Fanout(context.Background(), bench.FanoutConfig{Options: o, Subscribers: 50, Topics: 5, Updates: 200, Publishers: 2, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res, 50*200/5)

	c, err := bench.Catchup(context.Background(), bench.CatchupConfig{Options: o, Updates: 300, Publishers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !c.OK || c.Check.Delivered != 300 || c.ResponseLastEventID != c.LastEventID || c.LastEventID == "" {
		t.Fatalf("catch-up %+v", c)
	}

	// A 0.x run against the same hub, and a draft-08 run against a hub that trusts no issuer:
	// its tokens are refused.
	if res, err := bench.Fanout(context.Background(), bench.FanoutConfig{Options: opts(u), Subscribers: 10, Topics: 1, Updates: 20, Publishers: 1}); err != nil || !res.OK {
		t.Fatalf("0.x run on the same hub: %v %+v", err, res)
	}
	o.Hub = newHerald(t, nil)
	if res, err := bench.Fanout(context.Background(), bench.FanoutConfig{Options: o, Subscribers: 2, Topics: 1, Updates: 2, Publishers: 1}); err == nil && res.OK {
		t.Fatal("draft-08 tokens accepted by a hub that trusts no issuer")
	}
	o.Dialect = "1.0"
	if _, err := bench.Fanout(context.Background(), bench.FanoutConfig{Options: o, Subscribers: 1, Updates: 1}); err == nil {
		t.Fatal("unknown dialect accepted")
	}
}
