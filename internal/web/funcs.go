package web

import (
	"html/template"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// funcs are the template helpers; "ago" reads the dashboard's clock.
func (d *dashboard) funcs() template.FuncMap {
	return template.FuncMap{
		"ago":   func(t time.Time) string { return age(d.now(), t) },
		"stamp": stamp,
		"iso": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"short": shortPhase,
		"pct":   pct,
		"join":  strings.Join,
		"hash": func(h string) string {
			if len(h) > 12 {
				return h[:12] + "…"
			}
			return h
		},
		"progress": func(done, total int) string { return pct(done, total) },
		"atCap":    func(inUse, limit int) bool { return inUse >= limit },
		"terminal": func(s engine.RolloutState) bool { return s.Terminal() },
		"add":      func(a, b int) int { return a + b },
		"add64":    func(a float64, b int) float64 { return a + float64(b) },
	}
}

// stamp is a readable UTC time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}
