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

// OpenRecord opens record, a whole TLS 1.3 record as written on the wire, sealed under the
// traffic secret of suite at sequence number seq, and returns its inner plaintext.
func OpenRecord(suite uint16, secret []byte, seq uint64, record []byte) ([]byte, error) {
	rs, err := newRecordSealer(suite, secret)
	if err != nil {
		return nil, err
	}
	return rs.aead.Open(nil, rs.nonce(seq), record[5:], record[:5])
}

// HTTP2Conns returns the number of HTTP/2 connections the hub's own server serves.
func (s *Server) HTTP2Conns() int {
	p := s.pool()
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// HTTP2Handlers returns the number of request goroutines of the hub's own HTTP/2 server.
func (s *Server) HTTP2Handlers() int {
	n := 0
	for _, c := range s.pool().connList() {
		c.mu.Lock()
		n += c.handlers
		c.mu.Unlock()
	}
	return n
}
