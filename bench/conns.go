package bench

import (
	"crypto/tls"
	"net/http"

	"github.com/heraldhub/herald/client"
)

// connPool gives a group's subscribers their clients. Over HTTP/1.1 one Transport serves
// them all, each subscription on its own connection. Over HTTP/2 a Transport would put every
// subscription on one connection, so each connection gets its own Transport, shared by
// Streams consecutive subscribers.
type connPool struct {
	spec    groupSpec
	cache   tls.ClientSessionCache // nil: full handshakes
	clients []*client.Client       // HTTP/2: one per connection; HTTP/1.1: one
	trs     []*http.Transport
}

func newConnPool(spec groupSpec) *connPool {
	p := &connPool{spec: spec}
	if spec.Resume {
		p.cache = tls.NewLRUClientSessionCache(64)
	}
	if !spec.HTTP2 {
		p.add(newTransport(spec.Count, spec.Insecure, false, p.cache))
	}
	return p
}

// streams is the number of subscribers per connection.
func (p *connPool) streams() int {
	if !p.spec.HTTP2 {
		return 1
	}
	return max(p.spec.Streams, 1)
}

// client returns the client of the i-th subscriber of the group.
func (p *connPool) client(i int) *client.Client {
	if !p.spec.HTTP2 {
		return p.clients[0]
	}
	for c := i / p.streams(); len(p.clients) <= c; {
		p.add(newTransport(2, p.spec.Insecure, true, p.cache))
	}
	return p.clients[i/p.streams()]
}

func (p *connPool) add(tr *http.Transport) {
	p.trs = append(p.trs, tr)
	p.clients = append(p.clients, &client.Client{HTTPClient: &http.Client{Transport: tr}})
}

// close closes the idle connections of every Transport.
func (p *connPool) close() {
	for _, tr := range p.trs {
		tr.CloseIdleConnections()
	}
}

// newTransport is NewTransport with a session cache and, when http2 is set, HTTP/2 only.
func newTransport(maxIdlePerHost int, insecure, http2 bool, cache tls.ClientSessionCache) *http.Transport {
	tr := NewTransport(maxIdlePerHost, insecure)
	tr.TLSClientConfig.ClientSessionCache = cache
	if http2 {
		tr.TLSNextProto = nil
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP2(true)
	}
	return tr
}
