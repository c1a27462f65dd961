// Package topic owns Mercure topic selectors: deciding whether a selector given by a subscriber
// (or listed in a JWT's mercure.subscribe / mercure.publish claims) matches the topic of an
// update.
//
// The rules are those of the Mercure protocol as the reference hub applies them: a selector
// matches a topic when it is "*", when it is byte for byte equal to the topic, or when it
// contains "{", parses as an RFC 6570 URI template and the topic is one of the URIs the template
// can expand to. A selector that contains "{" but is not a valid template (or is longer than
// MaxTemplateLen) matches nothing but the identical topic.
//
// Draft-08 subscribers and tokens give typed matchers instead (Spec): "exact" compares bytes
// (a "{" is just a character) and "urlpattern" is a WHATWG URL Pattern, with relative patterns
// and topics resolved against the hub's URL; "*" is the wildcard of both. Matcher.CompileSpec
// compiles all three kinds of selector, and the compiled ones work wherever a Selector does.
//
// Compile turns a selector string into an immutable Selector once; Matcher adds bounded,
// concurrency-safe caches of compiled selectors and of (template, topic) results, which is what
// the hub uses on its hot path: every update is matched against every subscriber's selectors.
package topic
