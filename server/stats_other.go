//go:build !unix

package server

// maxOpenFiles returns -1: the limit on open files is not read on this system.
func maxOpenFiles() int64 { return -1 }
