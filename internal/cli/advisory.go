package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/api"
)

// maxAdvisoryRequest is the server's limit on one import request.
const maxAdvisoryRequest = 2 * advisory.MaxDocument

// advisoryFetchTimeout bounds fetching an advisory URL.
const advisoryFetchTimeout = 60 * time.Second

func newAdvisoryCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "advisory", Short: "Import and show security advisories (OSV, CSAF 2.0)",
		Long: `The advisory catalog: vendors' security advisories (Debian DSA/DLA and
Ubuntu USN as OSV JSON, Red Hat, SUSE and Microsoft as CSAF 2.0) with
the versions that fix them per OS release.`}
	cmd.AddCommand(newAdvisoryImportCmd(e), newAdvisoryListCmd(e), newAdvisoryGetCmd(e))
	return cmd
}

func newAdvisoryImportCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "import FILE|DIR|URL...",
		Short: "Import advisories from OSV or CSAF files, directories or URLs, all or nothing",
		Long: `Import advisories into the catalog. Each argument is a JSON file (an OSV
record, a CSAF 2.0 document or a JSON array of them), a directory (every
*.json file under it) or an http(s) URL (fetched here, at most 32 MiB,
within 60 s). Everything is parsed here first and sent in one request:
a bad file imports nothing, and the error names the file and the JSON
path. Importing the same advisories again changes nothing; a newer
"modified" replaces an advisory. Operators and admins may import.`,
		Args: minArgs(1, "a file, directory or URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			docs, err := advisoryDocuments(cmd.Context(), args)
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			n, size := 0, 0
			for _, d := range docs {
				as, err := advisory.Parse(d.Name, d.Content)
				if err != nil {
					return exitf(ExitError, "%w", err)
				}
				n += len(as)
				size += len(d.Content) + len(d.Name) + 64
			}
			if size > maxAdvisoryRequest {
				return exitf(ExitError, "%d documents of %d bytes in all: more than one import takes (%d); import them in parts", len(docs), size, maxAdvisoryRequest)
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			res, err := c.ImportAdvisories(cmd.Context(), docs)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, res, func(w io.Writer) {
				fmt.Fprintf(w, "%d advisories from %d documents: %d added, %d updated, %d unchanged, %d older than the catalog's\nsha256 %s\n",
					res.Advisories, len(docs), res.Added, res.Updated, res.Unchanged, res.Older, res.SHA256)
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

// advisoryDocuments reads the documents named by args, in order:
// files, the *.json files under directories (by path), URLs.
func advisoryDocuments(ctx context.Context, args []string) ([]api.AdvisoryDocument, error) {
	var docs []api.AdvisoryDocument
	for _, a := range args {
		if strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://") {
			b, err := fetchAdvisory(ctx, a)
			if err != nil {
				return nil, err
			}
			docs = append(docs, api.AdvisoryDocument{Name: a, Content: b})
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		var files []string
		if fi.IsDir() {
			err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && strings.HasSuffix(strings.ToLower(d.Name()), ".json") {
					files = append(files, p)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("%s: no *.json files", a)
			}
			slices.Sort(files)
		} else {
			files = []string{a}
		}
		for _, f := range files {
			b, err := readLimited(f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, api.AdvisoryDocument{Name: f, Content: b})
		}
	}
	return docs, nil
}

func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, advisory.MaxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > advisory.MaxDocument {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, advisory.MaxDocument)
	}
	return b, nil
}

// fetchAdvisory GETs url: a 2xx answer of at most MaxDocument bytes
// within advisoryFetchTimeout.
func fetchAdvisory(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, advisoryFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, advisory.MaxDocument+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("fetch %s: no complete answer within %s", url, advisoryFetchTimeout)
		}
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	if len(b) > advisory.MaxDocument {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", url, advisory.MaxDocument)
	}
	return b, nil
}

func newAdvisoryListCmd(e *env) *cobra.Command {
	var r remote
	var f api.AdvisoryFilter
	var all bool
	cmd := &cobra.Command{Use: "list [--severity S] [--ecosystem E] [--id ID]", Short: "List advisories of the catalog", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			list := api.AdvisoryList{Advisories: []api.Advisory{}}
			for {
				page, err := c.ListAdvisories(cmd.Context(), f)
				if err != nil {
					return apiErr(err)
				}
				list.Advisories = append(list.Advisories, page.Advisories...)
				list.Next = page.Next
				if !all || page.Next == "" {
					break
				}
				f.After = page.Next
			}
			return r.show(e, list, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSEVERITY\tCVSS\tPUBLISHED\tECOSYSTEMS\tALIASES\tSUMMARY")
				for _, a := range list.Advisories {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, cvssText(a.CVSSScore), dateText(a.Published),
						dash(ecosystems(a)), dash(clipText(strings.Join(a.Aliases, " "), 40)), clipText(a.Summary, 60))
				}
				more := ""
				if list.Next != "" {
					more = " (more: --all, or --after " + list.Next + ")"
				}
				fmt.Fprintf(w, "%d advisories%s\n", len(list.Advisories), more)
			})
		}}
	fl := cmd.Flags()
	fl.StringVar(&f.Severity, "severity", "", "this severity or higher (low, medium, high, critical)")
	fl.StringVar(&f.Ecosystem, "ecosystem", "", "an ecosystem (debian:12, rhel:9, windows:10.0.20348) or a family (ubuntu)")
	fl.StringVar(&f.ID, "id", "", "an advisory ID or alias (CVE-2023-5363, KB5030216)")
	fl.StringVar(&f.After, "after", "", "advisories after this ID")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many per page (default 500)")
	fl.BoolVar(&all, "all", false, "every page")
	r.flags(cmd, e, true)
	return cmd
}

func newAdvisoryGetCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "get ID", Short: "Show an advisory by ID or alias (a CVE, a KB)", Args: exactArgs(1, "an advisory ID or alias"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			a, err := c.GetAdvisory(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, a, func(w io.Writer) {
				fmt.Fprintf(w, "id\t%s\nsummary\t%s\nseverity\t%s\ncvss\t%s %s\npublished\t%s\nmodified\t%s\nsource\t%s\naliases\t%s\nreboot required\t%v\nlive patches\t%s\nurl\t%s\n",
					a.ID, dash(a.Summary), a.Severity, cvssText(a.CVSSScore), a.CVSSVector, dateText(a.Published), dateText(a.Modified), a.Source,
					dash(strings.Join(a.Aliases, " ")), a.RebootRequired, dash(strings.Join(a.LivePatches, " ")), dash(a.URL))
				fmt.Fprintln(w, "\nECOSYSTEM\tPACKAGE\tFIXED\tKB")
				for _, f := range a.Affected {
					fixed := f.Fixed
					if fixed == "" {
						fixed = "(no fix yet)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Ecosystem, dash(f.Package), fixed, dash(f.KB))
				}
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func ecosystems(a api.Advisory) string {
	var out []string
	for _, f := range a.Affected {
		if !slices.Contains(out, f.Ecosystem) {
			out = append(out, f.Ecosystem)
		}
	}
	return clipText(strings.Join(out, " "), 40)
}

func cvssText(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", s)
}

func dateText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

func newExposureCmd(e *env) *cobra.Command {
	var r remote
	var adv, selector string
	var summary bool
	cmd := &cobra.Command{Use: "exposure [--advisory ID] [--selector CEL] [--summary]",
		Short: "Show each node's exposure to an advisory, or to the whole catalog",
		Long: `Judge from the nodes' facts whether each is exposed: affected (a package
older than the fix, or no fix yet), fixed-not-running (the fix installed
but a reboot or restart away), live-patched (only the kernel is
vulnerable and a live patch the advisory names is loaded), not-affected,
or unknown (the facts do not say). With --advisory (an ID or an alias
such as a CVE), one advisory; without, every advisory of the catalog,
each node with the worst status and the advisories behind it.

With --summary, exposure over time from the history the server records
each time it computes exposure: open exposures by advisory, mean time to
remediate, the oldest open critical exposure, days exposed per node,
live patch coverage and reboot debt (nodes whose facts say a reboot is
required or whose running kernel is older than the newest installed).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			if summary {
				if adv != "" || selector != "" {
					return usagef("--summary is the whole fleet's: no --advisory or --selector with it")
				}
				sum, err := c.ExposureSummary(cmd.Context())
				if err != nil {
					return apiErr(err)
				}
				return r.show(e, sum, func(w io.Writer) { printExposureSummary(w, sum) })
			}
			rep, err := c.Exposure(cmd.Context(), adv, selector)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, rep, func(w io.Writer) {
				if rep.Advisory != "" {
					fmt.Fprintln(w, "NODE\tSTATUS\tREASON")
					for _, n := range rep.Nodes {
						fmt.Fprintf(w, "%s\t%s\t%s\n", n.Node, n.Status, dash(n.Reason))
					}
				} else {
					fmt.Fprintln(w, "NODE\tSTATUS\tADVISORIES")
					for _, n := range rep.Nodes {
						var ids []string
						for _, a := range n.Advisories {
							ids = append(ids, a.Advisory+"("+a.Status+")")
						}
						if n.More > 0 {
							ids = append(ids, fmt.Sprintf("+%d more", n.More))
						}
						what := strings.Join(ids, " ")
						if what == "" {
							what = n.Reason
						}
						fmt.Fprintf(w, "%s\t%s\t%s\n", n.Node, n.Status, dash(clipText(what, 120)))
					}
				}
				var counts []string
				for _, s := range []string{"affected", "fixed-not-running", "live-patched", "not-affected", "unknown"} {
					if rep.Counts[s] > 0 {
						counts = append(counts, fmt.Sprintf("%d %s", rep.Counts[s], s))
					}
				}
				fmt.Fprintf(w, "%d nodes: %s\n", len(rep.Nodes), dash(strings.Join(counts, ", ")))
			})
		}}
	cmd.Flags().StringVar(&adv, "advisory", "", "an advisory ID or alias (default: the whole catalog)")
	cmd.Flags().StringVar(&selector, "selector", "", "CEL selector of the nodes (default every node)")
	cmd.Flags().BoolVar(&summary, "summary", false, "exposure over time: MTTR, oldest open critical, live patch coverage, reboot debt")
	r.flags(cmd, e, true)
	return cmd
}

func printExposureSummary(w io.Writer, sum api.ExposureSummary) {
	fmt.Fprintln(w, "ADVISORY\tSEVERITY\tAFFECTED\tFIXED-NOT-RUNNING\tLIVE-PATCHED\tOPEN SINCE")
	for _, a := range sum.Advisories {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\n", a.Advisory, a.Severity, a.Counts["affected"], a.Counts["fixed-not-running"], a.Counts["live-patched"],
			a.Since.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "exposed nodes: %d; remediated exposures: %d", sum.ExposedNodes, sum.Remediated)
	if sum.Remediated > 0 {
		fmt.Fprintf(w, ", mean time to remediate %s", days(sum.MeanTimeToRemediateSeconds/86400))
	}
	fmt.Fprintln(w)
	if o := sum.OldestOpenCritical; o != nil {
		fmt.Fprintf(w, "oldest open critical: %s on %s (%s), open %s\n", o.Advisory, o.Node, o.Status, days(o.AgeSeconds/86400))
	} else {
		fmt.Fprintln(w, "oldest open critical: none")
	}
	fmt.Fprintf(w, "live patch coverage: %d of %d exposed nodes (%.0f%%) protected without a reboot\n", sum.LivePatchedNodes, sum.ExposedNodes, 100*sum.LivePatchCoverage)
	fmt.Fprintf(w, "reboot debt: %d nodes, %s in all\n", len(sum.RebootDebt), days(sum.RebootDebtDays))
	for _, d := range sum.RebootDebt {
		why := "reboot required"
		if d.Installed != "" {
			why = "runs " + d.Running + ", " + d.Installed + " installed"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", d.Node, days(d.Days), why)
	}
}

// days formats a number of days: "3.2 days", "5h".
func days(d float64) string {
	if d < 1 {
		return fmt.Sprintf("%.0fh", d*24)
	}
	return fmt.Sprintf("%.1f days", d)
}
