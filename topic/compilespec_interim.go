package topic

// CompileSpec (interim, replaced at merge by the urlpattern branch's version).
func (m *Matcher) CompileSpec(s Spec) (*Selector, error) {
	if s.Type == MatchTopic {
		return m.Compile(s.Value), nil
	}
	sel := &Selector{raw: s.Value, kind: KindExact, typ: s.Type}
	if s.Value == "*" {
		sel.kind = KindAny
	}
	return sel, nil
}
