//go:build !unix

package bench

// RaiseFileLimit does nothing where there is no open-file limit to raise (Windows), and
// returns 0: unknown.
func RaiseFileLimit() uint64 { return 0 }
