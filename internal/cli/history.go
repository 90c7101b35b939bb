package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
)

func newHistoryCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "history", Short: "The fleet's step history: what steps really took", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newHistoryExportCmd(e))
	return cmd
}

func newHistoryExportCmd(e *env) *cobra.Command {
	var r remote
	var file string
	cmd := &cobra.Command{Use: "export", Short: "Export the step history (JSON, docs/history.md) for drover simulate --history",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			raw, err := c.History(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			var b bytes.Buffer
			if err := json.Indent(&b, raw, "", "  "); err != nil {
				return exitf(ExitError, "history: %w", err)
			}
			b.WriteByte('\n')
			if file == "" || file == "-" {
				_, err = e.stdout.Write(b.Bytes())
			} else {
				err = os.WriteFile(file, b.Bytes(), 0o644)
			}
			if err != nil {
				return exitf(ExitError, "history: %w", err)
			}
			return nil
		}}
	cmd.Flags().StringVarP(&file, "output", "o", "", "write to `FILE` instead of standard output")
	r.flags(cmd, e, false)
	return cmd
}

// printPrediction renders a rollout's prediction beside what happened,
// and its ETA while it runs.
func printPrediction(w io.Writer, ro api.Rollout) {
	if p := ro.Prediction; p != nil {
		fmt.Fprintln(w)
		line := "predicted\t" + seconds(p.MakespanSeconds)
		if p.ActualMakespanSeconds != nil {
			line += ", took " + seconds(*p.ActualMakespanSeconds)
		}
		if p.ErrorPercent != nil {
			line += fmt.Sprintf(" (error %+.1f%%)", *p.ErrorPercent)
		}
		fmt.Fprintln(w, line)
		for _, m := range p.Model {
			fmt.Fprintf(w, "model\t%s\n", m)
		}
		fmt.Fprintln(w, "WAVE\tPREDICTED START\tPREDICTED END\tACTUAL END\tERROR")
		for _, wv := range p.Waves {
			errText := "-"
			if wv.ErrorPercent != nil {
				errText = fmt.Sprintf("%+.1f%%", *wv.ErrorPercent)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", wv.Name, optSeconds(wv.StartSeconds), optSeconds(wv.EndSeconds),
				optSeconds(wv.ActualEndSeconds), errText)
		}
	}
	if ro.ETA != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "eta\t%s\n", etaText(ro.ETA))
		for _, wv := range ro.ETA.Waves {
			if !wv.Ended && !wv.End.IsZero() {
				fmt.Fprintf(w, "eta\twave %s %s\n", wv.Name, rangeText(wv.End, wv.EndP10, wv.EndP90))
			}
		}
	}
}

// etaText is "15:04:05 (p10 15:03:58, p90 15:04:20)" with the delays
// ahead.
func etaText(eta *api.ETA) string {
	if eta.End.IsZero() {
		return "none: " + eta.Stalled
	}
	s := rangeText(eta.End, eta.EndP10, eta.EndP90)
	if len(eta.Delays) > 0 {
		s += "; pushed out by " + strings.Join(eta.Delays, "; ")
	}
	if eta.Stalled != "" {
		s += "; the simulation does not end: " + eta.Stalled
	}
	return s
}

func rangeText(end, p10, p90 time.Time) string {
	f := func(t time.Time) string { return t.Local().Format("15:04:05") }
	return fmt.Sprintf("%s (p10 %s, p90 %s)", f(end), f(p10), f(p90))
}

func optSeconds(v *float64) string {
	if v == nil {
		return "-"
	}
	return seconds(*v)
}

// predictionColumn is the list's PREDICTED column: "41s/40.9s -2.5%".
func predictionColumn(ro api.Rollout) string {
	p := ro.Prediction
	if p == nil {
		return "-"
	}
	s := seconds(p.MakespanSeconds)
	if p.ActualMakespanSeconds != nil {
		s += "/" + seconds(*p.ActualMakespanSeconds)
	}
	if p.ErrorPercent != nil {
		s += fmt.Sprintf(" %+.1f%%", *p.ErrorPercent)
	}
	return s
}

// meanError summarises the prediction error over the last finished
// rollouts with a prediction: "prediction error over the last 5
// rollouts: mean |error| 4.2%, worst +9.1%".
func meanError(rs []api.Rollout) string {
	const last = 10
	n, sum, worst := 0, 0.0, 0.0
	for _, ro := range rs {
		if n == last {
			break
		}
		if ro.Prediction == nil || ro.Prediction.ErrorPercent == nil {
			continue
		}
		e := *ro.Prediction.ErrorPercent
		n++
		sum += abs(e)
		if abs(e) > abs(worst) {
			worst = e
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("prediction error over the last %d finished rollouts: mean |error| %.1f%%, worst %+.1f%%", n, sum/float64(n), worst)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
