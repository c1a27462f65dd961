package topic

import "strconv"

// MatchType says how a selector's text is read. Mercure 0.x subscribers and tokens give topic
// selectors (the topic= parameter, the mercure claim); draft-08 ones give typed matchers (match=,
// match_urlpattern=, authorization_details). One hub serves both, so every selector carries its
// type from the request or token it came from.
type MatchType uint8

const (
	// MatchTopic is a Mercure 0.x topic selector: "*", a URI template, or an exact topic.
	MatchTopic MatchType = iota
	// MatchExact is draft-08's exact matcher: "*", or a byte-for-byte comparison.
	MatchExact
	// MatchURLPattern is draft-08's urlpattern matcher: "*", or a WHATWG URL Pattern, relative
	// patterns and topics resolved against the hub's URL.
	MatchURLPattern
)

// ParseMatchType returns the matcher type named name as the draft spells it ("exact",
// "urlpattern"), and false for any other name, which the caller must refuse.
func ParseMatchType(name string) (MatchType, bool) {
	switch name {
	case "exact":
		return MatchExact, true
	case "urlpattern":
		return MatchURLPattern, true
	}
	return 0, false
}

// String returns the type's draft-08 name ("exact", "urlpattern"), or "topic" for 0.x selectors.
func (t MatchType) String() string {
	switch t {
	case MatchTopic:
		return "topic"
	case MatchExact:
		return "exact"
	case MatchURLPattern:
		return "urlpattern"
	}
	return "MatchType(" + strconv.Itoa(int(t)) + ")"
}

// Spec is a selector as a request or token gives it, before it is compiled: its text and how to
// read it.
type Spec struct {
	Type  MatchType
	Value string
}
