package window

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WallLayout is how a calendar's local wall-clock times are written.
const WallLayout = "2006-01-02T15:04"

// Calendar is a set of periods in one IANA time zone: a first period
// [Start, End) in local wall-clock time, repeated by an optional Rule
// (an iCalendar RRULE), minus the occurrences whose start is listed in
// Except. Fleet freezes are calendars. Every occurrence lasts End-Start by
// the wall clock (a freeze 18:00–08:00 ends at 08:00 local also across a
// DST change); wall times are resolved as Weekly's are. A Calendar is
// immutable and safe for concurrent use.
type Calendar struct {
	loc        *time.Location
	start, end time.Time // wall readings coded as UTC
	rule       *Rule
	except     map[time.Time]bool
}

// CalendarSpec is a Calendar as operators write it: wall times as
// "2006-01-02T15:04" (or a date alone, "2006-01-02", for midnight), the
// rule as RRULE text ("FREQ=MONTHLY;BYDAY=2TU").
type CalendarSpec struct {
	TimeZone string   `json:"timeZone"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Rule     string   `json:"rule,omitempty"`
	Except   []string `json:"except,omitempty"`
}

// ParseWall parses a local wall-clock time "2006-01-02T15:04[:05]" or a
// date "2006-01-02" (midnight), coded as UTC.
func ParseWall(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{WallLayout, WallLayout + ":05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want a local time YYYY-MM-DDTHH:MM or a date YYYY-MM-DD", s)
}

// Compile checks the spec and builds its Calendar.
func (s CalendarSpec) Compile() (*Calendar, error) {
	start, err := ParseWall(s.Start)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	end, err := ParseWall(s.End)
	if err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	var rule *Rule
	if strings.TrimSpace(s.Rule) != "" {
		r, err := ParseRule(s.Rule)
		if err != nil {
			return nil, err
		}
		rule = &r
	}
	except := make([]time.Time, 0, len(s.Except))
	for _, e := range s.Except {
		t, err := ParseWall(e)
		if err != nil {
			return nil, fmt.Errorf("except: %w", err)
		}
		except = append(except, t)
	}
	return NewCalendar(s.TimeZone, start, end, rule, except)
}

// NewCalendar builds a calendar. start, end and except are wall-clock
// readings coded as UTC (see ParseWall); end must be after start.
func NewCalendar(timeZone string, start, end time.Time, rule *Rule, except []time.Time) (*Calendar, error) {
	if timeZone == "" || timeZone == "Local" {
		return nil, fmt.Errorf("time zone %q: want an IANA zone name such as Europe/Paris or UTC", timeZone)
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return nil, fmt.Errorf("load time zone: %w", err)
	}
	if !end.After(start) {
		return nil, fmt.Errorf("ends (%s) before it starts (%s)", end.Format(WallLayout), start.Format(WallLayout))
	}
	c := &Calendar{loc: loc, start: start, end: end, rule: rule, except: map[time.Time]bool{}}
	for _, e := range except {
		c.except[e] = true
	}
	if rule != nil && rule.Freq == "" {
		return nil, fmt.Errorf("rule: no FREQ")
	}
	return c, nil
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// maxOccurrences bounds the walk through a rule: a daily rule runs for
// 270 years before it is cut.
const maxOccurrences = 100000

// each calls fn with every occurrence's period in order of start, until
// fn returns false.
func (c *Calendar) each(fn func(from, to time.Time) bool) {
	z := zoneCache{loc: c.loc}
	length := c.end.Sub(c.start)
	emit := func(wall time.Time) bool {
		if c.except[wall] {
			return true
		}
		from, to := z.resolve(wall), z.resolve(wall.Add(length))
		if !to.After(from) {
			return true
		}
		return fn(from, to)
	}
	if c.rule == nil {
		emit(c.start)
		return
	}
	c.rule.expand(c.start, c.loc, emit)
}

// chainHorizon bounds how far At follows periods that overlap or touch:
// a freeze in force every day is reported as ending a year ahead (when
// deciding again extends it), not walked to the end of its rule.
const chainHorizon = 366 * day

// At reports whether t falls in a period and, if so, when it ends
// (following later periods that overlap or touch it, up to a year
// ahead), in the calendar's zone.
func (c *Calendar) At(t time.Time) (bool, time.Time) {
	var end time.Time
	horizon := t.Add(chainHorizon)
	c.each(func(from, to time.Time) bool {
		if end.IsZero() {
			if from.After(t) {
				return false
			}
			if t.Before(to) {
				end = to
			}
			return true
		}
		if from.After(end) || from.After(horizon) {
			return false
		}
		if to.After(end) {
			end = to
		}
		return true
	})
	if end.IsZero() {
		return false, time.Time{}
	}
	return true, end.In(c.loc)
}

// Next returns the first period starting after t, or zeros when there is
// none.
func (c *Calendar) Next(t time.Time) (from, to time.Time) {
	c.each(func(f, e time.Time) bool {
		if f.After(t) {
			from, to = f.In(c.loc), e.In(c.loc)
			return false
		}
		return true
	})
	return from, to
}

// Rule is the subset of an iCalendar recurrence rule (RFC 5545 3.3.10)
// that calendars of freezes use: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY),
// INTERVAL, BYDAY (with ordinals for MONTHLY and YEARLY: 2TU is the
// second Tuesday, -1FR the last Friday), BYMONTHDAY (negative from the
// month's end), BYMONTH, COUNT, UNTIL and WKST. Other parts are refused,
// never ignored.
type Rule struct {
	Freq       string
	Interval   int
	ByDay      []WeekdayNum
	ByMonthDay []int
	ByMonth    []time.Month
	Count      int
	Until      time.Time // an instant (UTC) or, with UntilWall, a wall reading
	UntilWall  bool
	text       string
}

// WeekdayNum is a BYDAY entry: N is 0 for every such weekday of the
// period, else its ordinal (negative from the end).
type WeekdayNum struct {
	N   int
	Day time.Weekday
}

var icalDays = map[string]time.Weekday{"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday,
	"TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday}

// String returns the rule as it was parsed.
func (r Rule) String() string { return r.text }

// ParseRule parses RRULE text ("FREQ=MONTHLY;BYDAY=2TU", with or without
// the "RRULE:" prefix).
func ParseRule(s string) (Rule, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "RRULE:")
	r := Rule{Interval: 1, text: s}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToUpper(strings.TrimSpace(k))
		if !ok || v == "" {
			return Rule{}, fmt.Errorf("rule %q: part %q: want NAME=VALUE", s, part)
		}
		if seen[k] {
			return Rule{}, fmt.Errorf("rule %q: %s given twice", s, k)
		}
		seen[k] = true
		v = strings.ToUpper(strings.TrimSpace(v))
		var err error
		switch k {
		case "FREQ":
			switch v {
			case "DAILY", "WEEKLY", "MONTHLY", "YEARLY":
				r.Freq = v
			default:
				err = fmt.Errorf("FREQ=%s: want DAILY, WEEKLY, MONTHLY or YEARLY", v)
			}
		case "INTERVAL":
			r.Interval, err = strconv.Atoi(v)
			if err == nil && r.Interval < 1 {
				err = fmt.Errorf("INTERVAL=%s: want a positive number", v)
			}
		case "COUNT":
			r.Count, err = strconv.Atoi(v)
			if err == nil && r.Count < 1 {
				err = fmt.Errorf("COUNT=%s: want a positive number", v)
			}
		case "UNTIL":
			r.Until, r.UntilWall, err = parseUntil(v)
		case "WKST":
			if _, ok := icalDays[v]; !ok {
				err = fmt.Errorf("WKST=%s: want MO, TU, WE, TH, FR, SA or SU", v)
			}
		case "BYDAY":
			for _, d := range strings.Split(v, ",") {
				wn, e := parseWeekdayNum(d)
				if e != nil {
					err = e
					break
				}
				r.ByDay = append(r.ByDay, wn)
			}
		case "BYMONTHDAY":
			for _, d := range strings.Split(v, ",") {
				n, e := strconv.Atoi(d)
				if e != nil || n == 0 || n < -31 || n > 31 {
					err = fmt.Errorf("BYMONTHDAY=%s: want days 1 to 31 or -1 to -31", v)
					break
				}
				r.ByMonthDay = append(r.ByMonthDay, n)
			}
		case "BYMONTH":
			for _, m := range strings.Split(v, ",") {
				n, e := strconv.Atoi(m)
				if e != nil || n < 1 || n > 12 {
					err = fmt.Errorf("BYMONTH=%s: want months 1 to 12", v)
					break
				}
				r.ByMonth = append(r.ByMonth, time.Month(n))
			}
		default:
			err = fmt.Errorf("%s is not supported (FREQ, INTERVAL, COUNT, UNTIL, WKST, BYDAY, BYMONTHDAY and BYMONTH are)", k)
		}
		if err != nil {
			return Rule{}, fmt.Errorf("rule %q: %w", s, err)
		}
	}
	switch {
	case r.Freq == "":
		return Rule{}, fmt.Errorf("rule %q: no FREQ", s)
	case r.Count > 0 && !r.Until.IsZero():
		return Rule{}, fmt.Errorf("rule %q: COUNT and UNTIL together", s)
	}
	for _, wn := range r.ByDay {
		if wn.N != 0 && r.Freq != "MONTHLY" && r.Freq != "YEARLY" {
			return Rule{}, fmt.Errorf("rule %q: an ordinal BYDAY (%d%s) needs FREQ=MONTHLY or YEARLY", s, wn.N, dayCode(wn.Day))
		}
	}
	return r, nil
}

func dayCode(d time.Weekday) string {
	for k, v := range icalDays {
		if v == d {
			return k
		}
	}
	return "?"
}

func parseWeekdayNum(s string) (WeekdayNum, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 {
		return WeekdayNum{}, fmt.Errorf("BYDAY %q: want MO…SU, optionally with an ordinal (2TU, -1FR)", s)
	}
	d, ok := icalDays[s[len(s)-2:]]
	if !ok {
		return WeekdayNum{}, fmt.Errorf("BYDAY %q: want MO…SU, optionally with an ordinal (2TU, -1FR)", s)
	}
	wn := WeekdayNum{Day: d}
	if num := s[:len(s)-2]; num != "" {
		n, err := strconv.Atoi(num)
		if err != nil || n == 0 || n < -5 || n > 5 {
			return WeekdayNum{}, fmt.Errorf("BYDAY %q: ordinal must be 1 to 5 or -1 to -5", s)
		}
		wn.N = n
	}
	return wn, nil
}

// parseUntil reads an UNTIL value: a UTC date-time (…Z), a local one, or
// a date (the end of that day, inclusive).
func parseUntil(v string) (time.Time, bool, error) {
	if t, err := time.Parse("20060102T150405Z", v); err == nil {
		return t, false, nil
	}
	if t, err := time.Parse("20060102T150405", v); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse("20060102", v); err == nil {
		return t.Add(day - time.Second), true, nil
	}
	return time.Time{}, false, fmt.Errorf("UNTIL=%s: want YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ", v)
}

// expand calls emit with the wall-clock start of every occurrence from
// dtstart on, in order, honouring COUNT and UNTIL, until emit returns
// false. dtstart is always the first occurrence (RFC 5545).
func (r *Rule) expand(dtstart time.Time, loc *time.Location, emit func(time.Time) bool) {
	z := zoneCache{loc: loc}
	n := 0
	past := func(wall time.Time) bool {
		if r.Until.IsZero() {
			return false
		}
		if r.UntilWall {
			return wall.After(r.Until)
		}
		return z.resolve(wall).After(r.Until)
	}
	out := func(wall time.Time) bool {
		if past(wall) {
			return false
		}
		n++
		if !emit(wall) {
			return false
		}
		return r.Count == 0 || n < r.Count
	}
	if !out(dtstart) {
		return
	}
	tod := dtstart.Sub(time.Date(dtstart.Year(), dtstart.Month(), dtstart.Day(), 0, 0, 0, 0, time.UTC))
	var cands []time.Time
	for k := 0; n < maxOccurrences && k < maxOccurrences; k++ {
		cands = r.period(dtstart, k, tod, cands[:0])
		if len(cands) == 0 && r.Freq == "DAILY" {
			continue
		}
		for _, c := range cands {
			if !c.After(dtstart) {
				continue
			}
			if !out(c) {
				return
			}
		}
		if len(cands) > 0 && past(cands[len(cands)-1]) {
			return
		}
	}
}

// period lists, sorted, the candidate starts of the k-th period (day,
// week, month or year, times INTERVAL) after dtstart's.
func (r *Rule) period(dtstart time.Time, k int, tod time.Duration, out []time.Time) []time.Time {
	y, m, d := dtstart.Date()
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Add(tod) }
	inMonth := func(t time.Time) bool { return len(r.ByMonth) == 0 || slices.Contains(r.ByMonth, t.Month()) }
	switch r.Freq {
	case "DAILY":
		t := at(y, m, d+k*r.Interval)
		if inMonth(t) && (len(r.ByDay) == 0 || slices.ContainsFunc(r.ByDay, func(w WeekdayNum) bool { return w.Day == t.Weekday() })) &&
			(len(r.ByMonthDay) == 0 || slices.Contains(r.ByMonthDay, t.Day())) {
			out = append(out, t)
		}
	case "WEEKLY":
		monday := at(y, m, d-(int(dtstart.Weekday())+6)%7+7*k*r.Interval)
		days := r.ByDay
		if len(days) == 0 {
			days = []WeekdayNum{{Day: dtstart.Weekday()}}
		}
		for i := range 7 {
			t := monday.AddDate(0, 0, i)
			if inMonth(t) && slices.ContainsFunc(days, func(w WeekdayNum) bool { return w.Day == t.Weekday() }) {
				out = append(out, t)
			}
		}
	case "MONTHLY":
		first := time.Date(y, m+time.Month(k*r.Interval), 1, 0, 0, 0, 0, time.UTC)
		if inMonth(first) {
			out = r.monthDays(first, d, tod, out)
		}
	case "YEARLY":
		months := r.ByMonth
		if len(months) == 0 {
			months = []time.Month{m}
		}
		for _, mm := range slices.Sorted(slices.Values(months)) {
			out = r.monthDays(time.Date(y+k*r.Interval, mm, 1, 0, 0, 0, 0, time.UTC), d, tod, out)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.Compact(out)
}

// monthDays appends the candidate days of the month starting at first:
// BYMONTHDAY's, BYDAY's, or dtstart's day of month (skipped when the
// month is too short).
func (r *Rule) monthDays(first time.Time, dtDay int, tod time.Duration, out []time.Time) []time.Time {
	last := first.AddDate(0, 1, -1).Day()
	add := func(d int) {
		if d >= 1 && d <= last {
			out = append(out, first.AddDate(0, 0, d-1).Add(tod))
		}
	}
	switch {
	case len(r.ByMonthDay) > 0:
		for _, md := range r.ByMonthDay {
			if md < 0 {
				md = last + 1 + md
			}
			if len(r.ByDay) == 0 || slices.ContainsFunc(r.ByDay, func(w WeekdayNum) bool {
				return w.Day == first.AddDate(0, 0, md-1).Weekday()
			}) {
				add(md)
			}
		}
	case len(r.ByDay) > 0:
		for _, wn := range r.ByDay {
			firstOf := 1 + (int(wn.Day)-int(first.Weekday())+7)%7 // day of month of the first such weekday
			var all []int
			for dd := firstOf; dd <= last; dd += 7 {
				all = append(all, dd)
			}
			switch {
			case wn.N == 0:
				for _, dd := range all {
					add(dd)
				}
			case wn.N > 0 && wn.N <= len(all):
				add(all[wn.N-1])
			case wn.N < 0 && -wn.N <= len(all):
				add(all[len(all)+wn.N])
			}
		}
	default:
		add(dtDay)
	}
	return out
}
