package bolt

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data to the disk, and its metadata only where reading the data back
// needs it (its size): cheaper than a full fsync on Linux.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
