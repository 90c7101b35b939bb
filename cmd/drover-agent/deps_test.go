package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps drover-agent slim: what a package links, its
// initialisation runs and its pages stay resident in every idle agent.
// For each target platform of the agent, none of these may be linked.
func TestDeps(t *testing.T) {
	forbidden := map[string]string{
		"github.com/drover-dev/drover/internal/server":   "the server",
		"github.com/drover-dev/drover/internal/store":    "the store",
		"github.com/drover-dev/drover/internal/web":      "the dashboard",
		"github.com/drover-dev/drover/internal/cli":      "the CLI (the whole binary)",
		"github.com/drover-dev/drover/internal/sim":      "the simulator",
		"modernc.org/sqlite":                             "SQLite",
		"github.com/jackc/pgx/v5":                        "PostgreSQL",
		"github.com/prometheus/client_golang/prometheus": "the metrics registry",
		"github.com/spf13/cobra":                         "the CLI framework",
		"github.com/chromedp/chromedp":                   "browser tests",
		// Pre-flight and wave gates run on the server; the PromQL parser
		// alone links Prometheus's storage and metrics registry.
		"github.com/drover-dev/drover/internal/preflight": "plan pre-flight (server side)",
		"github.com/drover-dev/drover/internal/gate":      "wave gates",
		"github.com/prometheus/prometheus/promql/parser":  "Prometheus's PromQL parser",
		// client-go's clientset registers every API group of Kubernetes
		// at init; the driver uses client-go's REST client instead
		// (driver.NewKubernetesClient).
		"k8s.io/client-go/kubernetes":        "the Kubernetes clientset",
		"k8s.io/client-go/kubernetes/scheme": "the Kubernetes clientset's scheme",
	}
	for _, target := range []string{"linux/amd64", "linux/arm64", "windows/amd64", "darwin/arm64"} {
		goos, goarch, _ := strings.Cut(target, "/")
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: go list: %v", target, err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			if why, bad := forbidden[pkg]; bad {
				t.Errorf("%s: drover-agent links %s (%s)", target, pkg, why)
			}
		}
	}
}
