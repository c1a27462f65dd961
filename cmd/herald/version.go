package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at link time by `make release` and `make image`
// (-ldflags "-X main.version=v1.2.3 -X main.commit=abc123"); empty in a plain `go build`,
// where the module's build information fills them in.
var (
	version string
	commit  string
)

// buildVersion says which Herald this is: the release, the commit it was built from, and the
// Go toolchain that built it.
type buildVersion struct {
	Version  string // release tag (v1.2.3), a pseudo-version, or "(devel)"
	Commit   string // VCS revision, "unknown" when the build recorded none
	Time     string // commit time (RFC 3339), empty when unknown
	Modified bool   // the work tree had uncommitted changes
	Go       string // e.g. go1.26.8
	Platform string // GOOS/GOARCH
}

// readVersion combines the link-time values with the module's build information: a
// `go install ...@v1.2.3` binary knows its version, and a `go build` in a git checkout knows
// its commit (-buildvcs, on by default).
func readVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Commit: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			v.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		v.Version = version
	}
	if commit != "" {
		v.Commit = commit
	}
	return v
}

// String is the one line `herald version` prints.
func (v buildVersion) String() string {
	s := "herald " + v.Version + " (commit " + v.Commit
	if v.Modified {
		s += ", modified"
	}
	if v.Time != "" {
		s += ", " + v.Time
	}
	return s + ", " + v.Go + " " + v.Platform + ")"
}

// versionCommand implements `herald version` and `herald --version`.
func versionCommand(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	_, err := fmt.Fprintln(stdout, readVersion())
	return err
}
