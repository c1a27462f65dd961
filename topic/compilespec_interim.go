package topic

import "fmt"

// CompileSpec compiles a selector of any dialect. Interim version: the d08-match branch brings
// the real one (URL patterns); this file is deleted when both are merged.
func (m *Matcher) CompileSpec(s Spec) (*Selector, error) {
	switch s.Type {
	case MatchTopic:
		return m.Compile(s.Value), nil
	case MatchExact:
		if s.Value == "*" {
			return &Selector{raw: s.Value, kind: KindAny}, nil
		}
		return &Selector{raw: s.Value, kind: KindExact}, nil
	}
	return nil, fmt.Errorf("topic: matcher type %s is not supported yet", s.Type)
}
