//go:build unix

package bench

import "syscall"

// RaiseFileLimit lifts the soft open-file limit to the hard one (every connection is a file)
// and returns the limit in force.
func RaiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		cur := lim.Cur
		lim.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
			return cur
		}
	}
	return lim.Cur
}
