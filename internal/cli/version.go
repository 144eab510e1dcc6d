package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what `sluice version` reports, all of it read from the build
// information the Go toolchain embeds in the binary, so a binary says what
// it is without a release process stamping it.
type buildInfo struct {
	Version   string `json:"version"` // module version: a tag, a pseudo-version, or "(devel)"
	Commit    string `json:"commit"`  // VCS revision, "unknown" when built without VCS stamping
	CommitAt  string `json:"commitTime,omitempty"`
	Modified  bool   `json:"modified"` // the working tree had uncommitted changes
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func readBuildInfo() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return fromBuildInfo(info)
}

// fromBuildInfo reads what the toolchain recorded; info is nil for a
// binary built without module support.
func fromBuildInfo(info *debug.BuildInfo) buildInfo {
	bi := buildInfo{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info == nil {
		return bi
	}
	if v := info.Main.Version; v != "" {
		bi.Version = v
	}
	if info.GoVersion != "" {
		bi.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Commit = s.Value
		case "vcs.time":
			bi.CommitAt = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

// String is the one-line form `sluice --version` prints.
func (bi buildInfo) String() string {
	commit := bi.Commit
	if bi.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("sluice %s, commit %s, %s, %s", bi.Version, commit, bi.GoVersion, bi.Platform)
}

func (bi buildInfo) write(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(bi)
	case "table", "":
		commit := bi.Commit
		if bi.Modified {
			commit += " (modified)"
		}
		if bi.CommitAt != "" {
			commit += ", " + bi.CommitAt
		}
		_, err := fmt.Fprintf(w, "version:  %s\ncommit:   %s\ngo:       %s\nplatform: %s\n", bi.Version, commit, bi.GoVersion, bi.Platform)
		return err
	}
	return fmt.Errorf("-o %q is not one of table, json", format)
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return &usageError{err: fmt.Errorf("-o %q is not one of table, json", output), cmd: cmd.CommandPath()}
			}
			return readBuildInfo().write(cmd.OutOrStdout(), output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
