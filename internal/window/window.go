// Package window owns maintenance windows and change freezes: when, by the
// calendar, drover may start work on a node. It is pure: every function
// takes the instant it reasons about and nothing reads the clock.
//
// A Weekly window is a set of spans, each opening on some weekdays at a
// local wall-clock time in one IANA time zone and closing Duration later
// by the wall clock (a 02:00 + 4h span closes at 06:00 local, also on DST
// nights). Spans may cross midnight and the end of the week; spans that
// overlap or touch merge into one open period.
//
// Daylight saving time: both ends of a span are local wall-clock times.
// A time that does not exist (skipped by a spring-forward jump) resolves to
// the instant of the jump: in Europe/Berlin on the last Sunday of March a
// span 02:30–04:30 opens at 03:00 CEST and is 1.5 h long that day; a span
// wholly inside the skipped hour (02:10–02:50) does not open that day. A
// time that occurs twice (fall back) resolves to its first occurrence: a
// span 02:30–04:30 on the last Sunday of October opens at 02:30 CEST and
// closes at 04:30 CET, 3 h later.
//
// Freezes are absolute periods [From, To) during which nothing starts.
// Calendars (calendar.go) are one-off or recurring periods in an IANA
// time zone, with the recurrence rules of iCalendar (RRULE): fleet
// freezes are calendars.
package window

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones must load on every OS, including minimal containers and Windows
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Span is one recurring open period: on each of Days it opens at Start
// after local midnight (0 ≤ Start < 24h) and stays open until the local
// wall clock reads Start+Duration (0 < Duration ≤ 7 days), possibly on a
// later day.
type Span struct {
	Days     []time.Weekday
	Start    time.Duration
	Duration time.Duration
}

// Weekly is a weekly maintenance window in one time zone. It is immutable
// and safe for concurrent use. A Weekly with no spans is never open.
type Weekly struct {
	name  string
	loc   *time.Location
	spans []Span
}

// New builds a weekly window. timeZone is an IANA name ("Europe/Berlin",
// "UTC"); "" and "Local" are rejected because a window must mean the same
// instant on every server. Spans are copied.
func New(name, timeZone string, spans []Span) (*Weekly, error) {
	if timeZone == "" || timeZone == "Local" {
		return nil, fmt.Errorf("window %s: time zone %q: want an IANA zone name such as Europe/Berlin or UTC", name, timeZone)
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return nil, fmt.Errorf("window %s: load time zone: %w", name, err)
	}
	w := &Weekly{name: name, loc: loc}
	for i, s := range spans {
		switch {
		case len(s.Days) == 0:
			return nil, fmt.Errorf("window %s: span %d: no days", name, i+1)
		case s.Start < 0 || s.Start >= day:
			return nil, fmt.Errorf("window %s: span %d: start %v is not within a day", name, i+1, s.Start)
		case s.Duration <= 0:
			return nil, fmt.Errorf("window %s: span %d: duration %v must be positive", name, i+1, s.Duration)
		case s.Duration > week:
			return nil, fmt.Errorf("window %s: span %d: duration %v is longer than 7 days", name, i+1, s.Duration)
		}
		for _, d := range s.Days {
			if d < time.Sunday || d > time.Saturday {
				return nil, fmt.Errorf("window %s: span %d: invalid weekday %d", name, i+1, d)
			}
		}
		w.spans = append(w.spans, Span{Days: slices.Clone(s.Days), Start: s.Start, Duration: s.Duration})
	}
	return w, nil
}

// Name returns the window's name.
func (w *Weekly) Name() string { return w.name }

// Location returns the window's time zone.
func (w *Weekly) Location() *time.Location { return w.loc }

type interval struct{ open, close time.Time }

// horizonBefore/After bound, in days, the periods computed around t: a
// span lasts at most a week, so a period open at t began at most 8 days
// earlier, and because the pattern repeats weekly (DST moves period ends by
// at most the shift) any period CanStart can use starts within two weeks.
const (
	horizonBefore = 8
	horizonAfter  = 16
)

// periods returns the merged open periods whose days lie within the
// horizon around t, sorted. always reports that one period covers more
// than a week around t, hence every week: the window never closes.
func (w *Weekly) periods(t time.Time) (ps []interval, always bool) {
	lt := t.In(w.loc)
	y, m, d := lt.Date()
	z := zoneCache{loc: w.loc}
	raw := make([]interval, 0, (horizonBefore+horizonAfter+1)*len(w.spans))
	for off := -horizonBefore; off <= horizonAfter; off++ {
		midnight := time.Date(y, m, d+off, 0, 0, 0, 0, time.UTC) // the calendar date as a UTC-coded wall reading
		wd := midnight.Weekday()
		for _, s := range w.spans {
			if !slices.Contains(s.Days, wd) {
				continue
			}
			o := z.resolve(midnight.Add(s.Start))
			c := z.resolve(midnight.Add(s.Start + s.Duration))
			if c.After(o) {
				raw = append(raw, interval{o, c})
			}
		}
	}
	slices.SortFunc(raw, func(a, b interval) int { return a.open.Compare(b.open) })
	for _, iv := range raw {
		if n := len(ps); n > 0 && !iv.open.After(ps[n-1].close) {
			if iv.close.After(ps[n-1].close) {
				ps[n-1].close = iv.close
			}
			continue
		}
		ps = append(ps, iv)
	}
	from, to := t.Add(-day), t.Add(8*day)
	for _, p := range ps {
		if !p.open.After(from) && !p.close.Before(to) {
			return ps, true
		}
	}
	return ps, false
}

// zoneCache remembers the zone periods (constant UTC offset) already
// looked up: Location.lookup re-evaluates the zone's rule string for
// instants past its transition table, which dominated the cost.
type zoneCache struct {
	loc  *time.Location
	segs []zoneSeg
}

type zoneSeg struct {
	start, end time.Time // zero means unbounded
	offset     int       // seconds east of UTC
}

func (z *zoneCache) offset(u time.Time) int {
	for _, s := range z.segs {
		if (s.start.IsZero() || !u.Before(s.start)) && (s.end.IsZero() || u.Before(s.end)) {
			return s.offset
		}
	}
	l := u.In(z.loc)
	_, off := l.Zone()
	start, end := l.ZoneBounds()
	z.segs = append(z.segs, zoneSeg{start, end, off})
	return off
}

// resolve returns the instant at which the local wall clock reads wall (a
// wall reading coded as UTC). A wall time that is skipped resolves to the
// instant of the jump; one that occurs twice resolves to its first
// occurrence.
func (z *zoneCache) resolve(wall time.Time) time.Time {
	offBefore := z.offset(wall.Add(-26 * time.Hour))
	offAfter := z.offset(wall.Add(26 * time.Hour))
	c1 := wall.Add(-time.Duration(offBefore) * time.Second)
	if offBefore == offAfter {
		return c1.In(z.loc) // no transition within a day either side
	}
	c2 := wall.Add(-time.Duration(offAfter) * time.Second)
	ok1, ok2 := reads(c1, wall, z.loc), reads(c2, wall, z.loc)
	switch {
	case ok1 && ok2:
		if c2.Before(c1) {
			return c2.In(z.loc)
		}
		return c1.In(z.loc)
	case ok1:
		return c1.In(z.loc)
	case ok2:
		return c2.In(z.loc)
	}
	// Skipped: read with the pre-jump offset, c1 lies after the jump, and
	// its zone period starts at the jump.
	start, _ := c1.In(z.loc).ZoneBounds()
	if start.IsZero() {
		return c1.In(z.loc)
	}
	return start.In(z.loc)
}

// reads reports whether instant c shows wall (a UTC-coded wall reading) in loc.
func reads(c, wall time.Time, loc *time.Location) bool {
	l := c.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC).Equal(wall)
}

// At reports whether the window is open at t and, if so, when the current
// open period ends (merged with any period it overlaps or touches). An
// always-open window returns a zero closesAt; a closed one returns zero.
func (w *Weekly) At(t time.Time) (open bool, closesAt time.Time) {
	ps, always := w.periods(t)
	if always {
		return true, time.Time{}
	}
	for _, p := range ps {
		if !t.Before(p.open) && t.Before(p.close) {
			return true, p.close
		}
	}
	return false, time.Time{}
}

// NextOpen returns the earliest instant ≥ t at which the window is open:
// t itself when it is open at t, the zero time when it never opens.
func (w *Weekly) NextOpen(t time.Time) time.Time {
	ps, always := w.periods(t)
	if always {
		return t
	}
	for _, p := range ps {
		if t.Before(p.close) {
			if t.Before(p.open) {
				return p.open
			}
			return t
		}
	}
	return time.Time{}
}

// CanStart reports whether work taking up to cutoff may start at t: the
// window is open at t and stays open until at least t+cutoff. When it may
// not, next is the earliest instant after t at which CanStart holds, or the
// zero time if it never does (no spans, or no open period of cutoff length
// within two weeks — the pattern repeats weekly). When ok, next is t. A negative cutoff counts as 0.
func (w *Weekly) CanStart(t time.Time, cutoff time.Duration) (ok bool, next time.Time) {
	cutoff = max(cutoff, 0)
	ps, always := w.periods(t)
	if always {
		return true, t
	}
	for _, p := range ps {
		if !t.Before(p.close) || p.close.Sub(p.open) < cutoff {
			continue
		}
		s := p.open
		if t.After(s) {
			s = t
		}
		latest := p.close.Add(-cutoff) // inclusive when cutoff > 0
		if cutoff == 0 {
			latest = p.close.Add(-time.Nanosecond)
		}
		if s.After(latest) {
			continue
		}
		return s.Equal(t), s
	}
	return false, time.Time{}
}

// Describe says when the window next changes, in its own zone: "open until
// Sat 06:00 Europe/Berlin", "opens Sat 02:00 Europe/Berlin", "always open"
// or "never opens".
func (w *Weekly) Describe(t time.Time) string {
	if open, closes := w.At(t); open {
		if closes.IsZero() {
			return "always open"
		}
		return "open until " + w.stamp(closes)
	}
	next := w.NextOpen(t)
	if next.IsZero() {
		return "never opens"
	}
	return "opens " + w.stamp(next)
}

func (w *Weekly) stamp(t time.Time) string {
	return t.In(w.loc).Format("Mon 15:04") + " " + w.loc.String()
}

// ParseDays parses weekday names, case-insensitively: full names
// ("Monday"), three-letter abbreviations ("mon") and ranges of either
// ("mon-fri", "fri-mon" wraps over the weekend). Duplicates are dropped;
// order of first appearance is kept.
func ParseDays(s []string) ([]time.Weekday, error) {
	var out []time.Weekday
	add := func(d time.Weekday) {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	for _, item := range s {
		item = strings.TrimSpace(item)
		if a, b, ok := strings.Cut(item, "-"); ok {
			from, err := parseDay(a)
			if err != nil {
				return nil, err
			}
			to, err := parseDay(b)
			if err != nil {
				return nil, err
			}
			for d := from; ; d = (d + 1) % 7 {
				add(d)
				if d == to {
					break
				}
			}
			continue
		}
		d, err := parseDay(item)
		if err != nil {
			return nil, err
		}
		add(d)
	}
	if len(out) == 0 {
		return nil, errors.New("no days given")
	}
	return out, nil
}

func parseDay(s string) (time.Weekday, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for d := time.Sunday; d <= time.Saturday; d++ {
		full := strings.ToLower(d.String())
		if l == full || l == full[:3] {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown weekday %q (want Mon…Sun or Monday…Sunday)", s)
}

// ParseClock parses a local time of day "HH:MM" or "HH:MM:SS" (00:00 to
// 23:59:59) into the duration since midnight.
func ParseClock(s string) (time.Duration, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("clock %q: want HH:MM", s)
	}
	limits := []int{23, 59, 59}
	units := []time.Duration{time.Hour, time.Minute, time.Second}
	var d time.Duration
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) != 2 || n < 0 || n > limits[i] {
			return 0, fmt.Errorf("clock %q: want HH:MM with 00 ≤ HH ≤ 23 and 00 ≤ MM ≤ 59", s)
		}
		d += time.Duration(n) * units[i]
	}
	return d, nil
}

// Freeze is a period [From, To) during which no change may start.
type Freeze struct {
	Name     string
	From, To time.Time
	Reason   string
}

// Validate reports whether the freeze has a positive length.
func (f Freeze) Validate() error {
	if !f.To.After(f.From) {
		return fmt.Errorf("freeze %s: ends (%s) before it starts (%s)", f.Name, f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	return nil
}

// Frozen returns the first freeze in freezes (in slice order) covering t,
// and whether there is one. Freezes with To ≤ From never cover anything.
func Frozen(freezes []Freeze, t time.Time) (Freeze, bool) {
	for _, f := range freezes {
		if !t.Before(f.From) && t.Before(f.To) {
			return f, true
		}
	}
	return Freeze{}, false
}

// FreezeEnd returns when the freeze covering t ends, following freezes that
// overlap or touch it (so work may start at the result), or the zero time
// if t is not frozen.
func FreezeEnd(freezes []Freeze, t time.Time) time.Time {
	if _, ok := Frozen(freezes, t); !ok {
		return time.Time{}
	}
	end := t
	for {
		extended := false
		for _, f := range freezes {
			if !end.Before(f.From) && end.Before(f.To) {
				end, extended = f.To, true
			}
		}
		if !extended {
			return end
		}
	}
}
