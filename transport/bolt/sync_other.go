//go:build !linux

package bolt

import "os"

// datasync flushes f to the disk. Other systems have no fdatasync that Go exposes
// everywhere: a full sync is what they get.
func datasync(f *os.File) error { return f.Sync() }
