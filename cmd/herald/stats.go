package main

import (
	"net"
	"net/url"
	"os"

	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/transport/bolt"
)

// nodeAddr is the address a node gives in its heartbeats, for the other nodes' dashboards:
// the listener's, with the host name in place of an unspecified IP.
func nodeAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// storeStats returns what the live stats show of a bolt transport's file (its size, read
// when asked, and the bounds of the URL or their defaults), or nil for other transports.
func storeStats(transportURL string) func() server.StoreStats {
	u, err := url.Parse(transportURL)
	if err != nil || u.Scheme != bolt.Scheme {
		return nil
	}
	path, opts, err := bolt.ParseURL(u)
	if err != nil {
		return nil
	}
	st := server.StoreStats{Path: path, MaxFileBytes: opts.MaxFileSize, RetainUpdates: opts.Size, RetainBytes: opts.MaxBytes}
	if st.RetainUpdates == 0 {
		st.RetainUpdates = bolt.DefaultSize
	}
	if st.RetainBytes == 0 {
		st.RetainBytes = bolt.DefaultMaxBytes
	}
	return func() server.StoreStats {
		out := st
		out.FileBytes = -1
		if fi, err := os.Stat(path); err == nil {
			out.FileBytes = fi.Size()
		}
		return out
	}
}
