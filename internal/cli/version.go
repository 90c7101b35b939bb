package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `drover version` reports.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// buildVersion reads the version stamped into the binary by the Go
// toolchain: the module version for `go install`, "dev" for a tree build,
// plus the VCS revision when the build recorded one.
func buildVersion() versionInfo {
	v := versionInfo{Version: "dev", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
		v.Version = mv
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v.Revision = s.Value
			if len(v.Revision) > 12 {
				v.Revision = v.Revision[:12]
			}
		}
	}
	return v
}

func newVersionCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print drover's version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(out, formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			v := buildVersion()
			switch f {
			case formatJSON:
				return writeJSON(e.stdout, v)
			case formatYAML:
				return writeYAML(e.stdout, v)
			}
			rev := ""
			if v.Revision != "" {
				rev = " (" + v.Revision + ")"
			}
			_, err = fmt.Fprintf(e.stdout, "drover %s%s %s %s\n", v.Version, rev, v.GoVersion, v.Platform)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "table", "output format: table | json | yaml")
	return cmd
}
