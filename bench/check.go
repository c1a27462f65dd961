package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// plan is how a run's updates are spread: publisher p's j-th update (j from 0) goes to topic
// (p+j) mod T, and its data is "p j sendUnixNanos", then optional padding. Each publisher
// publishes one update at a time, so the hub must deliver a publisher's updates of a topic in
// the order of j: that is what the checks verify, whatever the number of publishers.
type plan struct {
	Topics     int `json:"topics"`
	Publishers int `json:"publishers"`
}

// first is the first j of publisher p that goes to topic t.
func (pl plan) first(t, p int) int64 {
	return int64(((t-p)%pl.Topics + pl.Topics) % pl.Topics)
}

// count is how many of publisher p's first n updates go to topic t.
func (pl plan) count(t, p int, n int64) int64 {
	f := pl.first(t, p)
	if f >= n {
		return 0
	}
	return (n-1-f)/int64(pl.Topics) + 1
}

// expected is how many updates a subscriber of topic t must receive when publisher p
// published published[p] updates.
func (pl plan) expected(t int, published []int64) int64 {
	var n int64
	for p, np := range published {
		n += pl.count(t, p, np)
	}
	return n
}

// payload is the data of publisher p's j-th update sent at sentNs, padded to size bytes.
func payload(p int, j, sentNs int64, size int) string {
	b := make([]byte, 0, max(size, 48))
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, j, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, sentNs, 10)
	if len(b) < size {
		b = append(b, ' ')
		for len(b) < size {
			b = append(b, 'x')
		}
	}
	return string(b)
}

// parsePayload reads what payload wrote.
func parsePayload(data string) (p int, j, sentNs int64, ok bool) {
	f1, rest, ok1 := strings.Cut(data, " ")
	f2, rest, ok2 := strings.Cut(rest, " ")
	f3, _, _ := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	pp, err1 := strconv.Atoi(f1)
	j, err2 := strconv.ParseInt(f2, 10, 64)
	sentNs, err3 := strconv.ParseInt(f3, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return pp, j, sentNs, true
}

// streamCheck follows what one subscriber of one topic received. Memory stays constant
// while deliveries are in order: only gaps are remembered, until filled.
type streamCheck struct {
	topic   int
	next    []int64            // per publisher, the next j expected
	missing map[int64]struct{} // j*Publishers+p of updates skipped over and not received yet

	unique, dup, outOfOrder, unexpected int64
	lastAt                              int64 // unix nanos of the latest new delivery
	last                                int64 // index p + j×Publishers of the latest update read
}

func newStreamCheck(pl plan, topic int) *streamCheck {
	c := &streamCheck{topic: topic, next: make([]int64, pl.Publishers)}
	for p := range c.next {
		c.next[p] = pl.first(topic, p)
	}
	return c
}

// receive records one event's data received at nowNs; it returns the send timestamp and
// whether it was a new delivery (neither duplicate nor unexpected).
func (c *streamCheck) receive(pl plan, data string, nowNs int64) (sentNs int64, fresh bool) {
	p, j, sentNs, ok := parsePayload(data)
	if !ok || p < 0 || p >= pl.Publishers || j < 0 || (int64(p)+j)%int64(pl.Topics) != int64(c.topic) {
		c.unexpected++
		return 0, false
	}
	c.last = int64(p) + j*int64(pl.Publishers)
	step := int64(pl.Topics)
	switch n := c.next[p]; {
	case j == n:
		c.next[p] = n + step
	case j > n:
		if c.missing == nil {
			c.missing = make(map[int64]struct{})
		}
		for k := n; k < j; k += step {
			c.missing[k*int64(pl.Publishers)+int64(p)] = struct{}{}
		}
		c.next[p] = j + step
	default:
		key := j*int64(pl.Publishers) + int64(p)
		if _, late := c.missing[key]; !late {
			c.dup++
			return sentNs, false
		}
		delete(c.missing, key)
		c.outOfOrder++
	}
	c.unique++
	c.lastAt = nowNs
	return sentNs, true
}

// lost is how many of the updates published (published[p] by publisher p) never arrived.
func (c *streamCheck) lost(pl plan, published []int64) int64 {
	n := int64(len(c.missing))
	step := int64(pl.Topics)
	for p, np := range published {
		if p < len(c.next) && c.next[p] < np {
			n += (np - c.next[p] + step - 1) / step
		}
	}
	return n
}

// Check is the correctness summary of a run's deliveries.
type Check struct {
	// Expected deliveries (each subscriber × each update of its topic), and Delivered, those
	// that arrived, each counted once.
	Expected  int64 `json:"expected"`
	Delivered int64 `json:"delivered"`
	// Lost never arrived; Duplicated arrived more than once (the extra copies); OutOfOrder
	// arrived after a later update of the same publisher; Unexpected were not for that
	// subscriber (another topic, or unreadable data).
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	OutOfOrder int64 `json:"out_of_order"`
	Unexpected int64 `json:"unexpected"`
	// SubscribersWithProblems counts subscribers with any of the above; Examples describes
	// the first few.
	SubscribersWithProblems int      `json:"subscribers_with_problems"`
	Examples                []string `json:"examples,omitempty"`
}

// OK reports whether every expected delivery happened once and in order, and nothing else.
func (c Check) OK() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.OutOfOrder == 0 && c.Unexpected == 0 && c.Delivered == c.Expected
}

const maxExamples = 5

// add accounts one subscriber's stream.
func (c *Check) add(id int, sc *streamCheck, pl plan, published []int64) {
	c.tally(fmt.Sprintf("subscriber %d (topic %d)", id, sc.topic), pl.expected(sc.topic, published), sc.unique,
		sc.lost(pl, published), sc.dup, sc.outOfOrder, sc.unexpected, "")
}

// tally accounts one subscriber, described by who, and keeps an example when something went
// wrong; detail, when set, ends the example.
func (c *Check) tally(who string, expected, delivered, lost, dup, outOfOrder, unexpected int64, detail string) {
	c.Expected += expected
	c.Delivered += delivered
	c.Lost += lost
	c.Duplicated += dup
	c.OutOfOrder += outOfOrder
	c.Unexpected += unexpected
	if lost == 0 && dup == 0 && outOfOrder == 0 && unexpected == 0 {
		return
	}
	c.SubscribersWithProblems++
	if len(c.Examples) < maxExamples {
		ex := fmt.Sprintf("%s: got %d of %d, lost %d, duplicated %d, out of order %d, unexpected %d",
			who, delivered, expected, lost, dup, outOfOrder, unexpected)
		if detail != "" {
			ex += ", " + detail
		}
		c.Examples = append(c.Examples, ex)
	}
}

// merge adds another group's summary.
func (c *Check) merge(o Check) {
	c.Expected += o.Expected
	c.Delivered += o.Delivered
	c.Lost += o.Lost
	c.Duplicated += o.Duplicated
	c.OutOfOrder += o.OutOfOrder
	c.Unexpected += o.Unexpected
	c.SubscribersWithProblems += o.SubscribersWithProblems
	for _, e := range o.Examples {
		if len(c.Examples) < maxExamples {
			c.Examples = append(c.Examples, e)
		}
	}
}

// problems describes what went wrong, one line each.
func (c Check) problems() []string {
	if c.OK() {
		return nil
	}
	out := []string{fmt.Sprintf("%d of %d expected deliveries arrived; lost %d, duplicated %d, out of order %d, unexpected %d, in %d subscribers",
		c.Delivered, c.Expected, c.Lost, c.Duplicated, c.OutOfOrder, c.Unexpected, c.SubscribersWithProblems)}
	return append(out, c.Examples...)
}
