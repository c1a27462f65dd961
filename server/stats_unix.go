//go:build unix

package server

import "syscall"

// maxOpenFiles returns the soft limit on open files, or -1.
func maxOpenFiles() int64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return -1
	}
	return int64(lim.Cur)
}
