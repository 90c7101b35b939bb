package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/localize"
	"github.com/drover-dev/drover/internal/sim"
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
		"pval":  localize.FormatP,
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
		"local":    local,
		// budgetOf is a fleet budget's name from a limit's key ("budget:NAME"), "" for other limits.
		"budgetOf": func(key string) string {
			name, _ := strings.CutPrefix(key, "budget:")
			if name == key {
				return ""
			}
			return name
		},
		"secs":   secs,
		"errPct": errPct,
		"isoPtr": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
	}
}

// local shows an instant in a named IANA zone, to the minute, naming the
// zone (a freeze's end in the zone it was written in); "" for nil.
func local(t *time.Time, zone string) string {
	if t == nil {
		return ""
	}
	v := *t
	if loc, err := time.LoadLocation(zone); err == nil {
		v = v.In(loc)
	}
	return v.Format("Mon 2006-01-02 15:04") + " " + zone
}

// stamp is a readable UTC time.
// secs renders seconds (a float64 or *float64, nil "—") for people.
func secs(v any) string {
	switch x := v.(type) {
	case float64:
		return sim.FormatDuration(time.Duration(x * float64(time.Second)))
	case *float64:
		if x != nil {
			return secs(*x)
		}
	}
	return "—"
}

// errPct renders a prediction error in percent, "—" for nil.
func errPct(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%+.1f%%", *v)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}
