package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/store"
)

// exposureCollector exports the exposure history (store.ExposureHistory):
// a scrape reads it from the store, as the server recorded it the last
// time it computed exposure (every GET /v1/exposure and the leader's sweep every
// exposureSweepEvery), so every server sharing a database exports the
// same figures: aggregate across servers with max, not sum.
type exposureCollector struct {
	h   store.ExposureHistory
	now func() time.Time
	log *slog.Logger

	exposed, coverage, debtNodes, debtSeconds, oldestCritical, mttr, remediated *prometheus.Desc
}

func newExposureCollector(st store.Store, now func() time.Time, log *slog.Logger) prometheus.Collector {
	h, ok := store.AsExposureHistory(st)
	if !ok {
		return nil
	}
	d := prometheus.NewDesc
	return &exposureCollector{h: h, now: now, log: log,
		exposed: d("drover_exposed_nodes", "Nodes exposed to an advisory, by advisory, its severity and the node's status "+
			"(affected, fixed-not-running, live-patched), as last computed.", []string{"advisory", "severity", "status"}, nil),
		coverage: d("drover_livepatch_coverage_ratio", "Of the nodes exposed to any advisory, the share whose every exposure "+
			"is covered by a loaded live patch (protected without a reboot); 0 with none exposed.", nil, nil),
		debtNodes: d("drover_reboot_debt_nodes", "Nodes that need a reboot: their facts say so, or their running kernel "+
			"is older than the newest installed.", nil, nil),
		debtSeconds: d("drover_reboot_debt_seconds", "Reboot debt summed over the nodes: for each, the time since it was first "+
			"found needing a reboot.", nil, nil),
		oldestCritical: d("drover_oldest_open_critical_seconds", "Age of the oldest open exposure of a node to a critical "+
			"advisory; 0 with none open.", nil, nil),
		mttr: d("drover_mean_time_to_remediate_seconds", "Mean time from a node first found exposed to an advisory to "+
			"it found not affected, over the remediated exposures; 0 before the first.", nil, nil),
		remediated: d("drover_exposures_remediated", "Exposures remediated (closed) in the history.", nil, nil),
	}
}

func (c *exposureCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.exposed, c.coverage, c.debtNodes, c.debtSeconds, c.oldestCritical, c.mttr, c.remediated} {
		ch <- d
	}
}

func (c *exposureCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.h.ExposureState(ctx)
	if err != nil {
		c.log.Warn("exposure metrics not read", "err", err)
		return
	}
	sum := summarizeExposure(st, c.now())
	for _, a := range sum.Advisories {
		for status, n := range a.Counts {
			ch <- prometheus.MustNewConstMetric(c.exposed, prometheus.GaugeValue, float64(n), a.Advisory, a.Severity, status)
		}
	}
	oldest := 0.0
	if sum.OldestOpenCritical != nil {
		oldest = sum.OldestOpenCritical.AgeSeconds
	}
	ch <- prometheus.MustNewConstMetric(c.coverage, prometheus.GaugeValue, sum.LivePatchCoverage)
	ch <- prometheus.MustNewConstMetric(c.debtNodes, prometheus.GaugeValue, float64(len(sum.RebootDebt)))
	ch <- prometheus.MustNewConstMetric(c.debtSeconds, prometheus.GaugeValue, sum.RebootDebtDays*86400)
	ch <- prometheus.MustNewConstMetric(c.oldestCritical, prometheus.GaugeValue, oldest)
	ch <- prometheus.MustNewConstMetric(c.mttr, prometheus.GaugeValue, sum.MeanTimeToRemediateSeconds)
	ch <- prometheus.MustNewConstMetric(c.remediated, prometheus.GaugeValue, float64(sum.Remediated))
}
