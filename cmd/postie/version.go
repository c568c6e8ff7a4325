package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time by the release build (dist/deb/build.sh):
//
//	-ldflags "-X main.version=1.2.3 -X main.commit=<hash> -X main.date=<RFC 3339>"
//
// When empty, what the go command recorded in the binary is used: the
// module version, and the VCS revision and commit time of the tree it was
// built from ("-dirty" when it had uncommitted changes).
var version, commit, date string

// postieVersion is the version alone: "1.2.3", or "devel" for a build
// that carries none.
func postieVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// buildStamp returns the commit and date of the build: the link-time
// values, else the VCS stamp of the go command ("unknown" for neither).
func buildStamp() (rev, when string) {
	bi, _ := debug.ReadBuildInfo()
	return stampFrom(bi, commit, date)
}

func stampFrom(bi *debug.BuildInfo, linkCommit, linkDate string) (rev, when string) {
	rev, when = linkCommit, linkDate
	if bi != nil {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				if when == "" {
					when = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && linkCommit == "" && rev != "" {
			rev += "-dirty"
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if when == "" {
		when = "unknown"
	}
	return rev, when
}

// versionLine is what `postie version` and `postie --version` print.
func versionLine() string {
	rev, when := buildStamp()
	return fmt.Sprintf("postie %s (commit %s, built %s, %s %s/%s)", postieVersion(), rev, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of postie, its commit and build date",
		Long: `Print the version of postie, the commit it was built from and the
build date (for a build without release stamps: the commit's date), the
Go version and the platform. postie --version prints the same.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(a.stdout, versionLine())
			return nil
		},
	}
}
