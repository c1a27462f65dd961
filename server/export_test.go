package server

// SealedStreams returns the number of hijacked streams that seal their own TLS records.
func (s *Server) SealedStreams() int {
	p := s.pool()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for rs := range p.streams {
		if rs.tls != nil {
			n++
		}
	}
	return n
}
