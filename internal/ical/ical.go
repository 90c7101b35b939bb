// Package ical reads the events of an iCalendar file (RFC 5545) as
// calendars of periods: the VEVENTs' DTSTART, DTEND or DURATION (with
// TZID, UTC or all-day dates), RRULE, EXDATE, SUMMARY, DESCRIPTION and
// UID. It is what `drover freeze import` uses to turn a holiday or
// change-freeze calendar into fleet freezes. Anything it cannot honour
// exactly (RDATE, several RRULEs, a TZID that is not an IANA zone name)
// is an error naming the file and line, never a silent approximation.
package ical

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/window"
)

// Event is one VEVENT as a calendar spec.
type Event struct {
	UID         string
	Summary     string
	Description string
	Line        int // where its BEGIN:VEVENT is
	Spec        window.CalendarSpec
}

// Error is a problem at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// line is one unfolded content line: NAME;PARAM=V:VALUE.
type line struct {
	n      int
	name   string
	params map[string]string
	value  string
}

// Parse reads every VEVENT of the file. defaultZone is the zone of
// floating times and all-day dates (those without TZID or Z). Any error
// returns no events.
func Parse(file string, data []byte, defaultZone string) ([]Event, error) {
	lines, err := unfold(file, data)
	if err != nil {
		return nil, err
	}
	var out []Event
	var cur *vevent
	depth := 0
	inCal := false
	for _, l := range lines {
		switch {
		case l.name == "BEGIN" && strings.EqualFold(l.value, "VCALENDAR"):
			inCal = true
		case !inCal:
			return nil, &Error{file, l.n, "content outside BEGIN:VCALENDAR"}
		case l.name == "BEGIN" && strings.EqualFold(l.value, "VEVENT"):
			if cur != nil {
				return nil, &Error{file, l.n, "BEGIN:VEVENT inside a VEVENT"}
			}
			cur = &vevent{begin: l.n}
		case l.name == "END" && strings.EqualFold(l.value, "VEVENT"):
			if cur == nil {
				return nil, &Error{file, l.n, "END:VEVENT without BEGIN:VEVENT"}
			}
			ev, err := cur.event(file, defaultZone)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
			cur = nil
		case l.name == "BEGIN":
			depth++
		case l.name == "END" && strings.EqualFold(l.value, "VCALENDAR"):
			inCal = false
		case l.name == "END":
			depth--
		case cur != nil && depth == 0:
			if err := cur.add(file, l); err != nil {
				return nil, err
			}
		}
	}
	if cur != nil {
		return nil, &Error{file, cur.begin, "VEVENT not closed by END:VEVENT"}
	}
	if len(out) == 0 {
		return nil, &Error{file, 1, "no VEVENT in the file"}
	}
	return out, nil
}

// unfold joins folded lines (a line starting with a space or tab
// continues the previous one) and splits each into name, parameters and
// value.
func unfold(file string, data []byte) ([]line, error) {
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var raw []string
	var starts []int
	n := 0
	for sc.Scan() {
		n++
		s := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		if (strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\t")) && len(raw) > 0 {
			raw[len(raw)-1] += s[1:]
			continue
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		raw = append(raw, s)
		starts = append(starts, n)
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{file, n + 1, err.Error()}
	}
	for i, s := range raw {
		l, err := split(s)
		if err != nil {
			return nil, &Error{file, starts[i], err.Error()}
		}
		l.n = starts[i]
		out = append(out, l)
	}
	return out, nil
}

func split(s string) (line, error) {
	l := line{params: map[string]string{}}
	colon := -1
	quoted := false
	for i, r := range s {
		if r == '"' {
			quoted = !quoted
		}
		if r == ':' && !quoted {
			colon = i
			break
		}
	}
	if colon < 0 {
		return l, fmt.Errorf("line %q has no ':' between name and value", trim(s))
	}
	head, value := s[:colon], s[colon+1:]
	parts := strings.Split(head, ";")
	l.name = strings.ToUpper(parts[0])
	if l.name == "" {
		return l, fmt.Errorf("line %q has no property name", trim(s))
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return l, fmt.Errorf("parameter %q of %s: want NAME=VALUE", p, l.name)
		}
		l.params[strings.ToUpper(k)] = strings.Trim(v, `"`)
	}
	l.value = value
	return l, nil
}

func trim(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

type vevent struct {
	begin                int
	uid, summary, desc   string
	start, end           *line
	duration             *line
	rrule                *line
	exdates              []line
	startZone, startWall string
}

func (v *vevent) add(file string, l line) error {
	dup := func(p **line) error {
		if *p != nil {
			return &Error{file, l.n, fmt.Sprintf("%s given twice in the VEVENT (first at line %d)", l.name, (*p).n)}
		}
		c := l
		*p = &c
		return nil
	}
	switch l.name {
	case "UID":
		v.uid = l.value
	case "SUMMARY":
		v.summary = unescape(l.value)
	case "DESCRIPTION":
		v.desc = unescape(l.value)
	case "DTSTART":
		return dup(&v.start)
	case "DTEND":
		return dup(&v.end)
	case "DURATION":
		return dup(&v.duration)
	case "RRULE":
		return dup(&v.rrule)
	case "EXDATE":
		v.exdates = append(v.exdates, l)
	case "RDATE", "EXRULE":
		return &Error{file, l.n, l.name + " is not supported: list each extra period as its own VEVENT"}
	}
	return nil
}

func unescape(s string) string {
	return strings.NewReplacer(`\n`, "\n", `\N`, "\n", `\,`, ",", `\;`, ";", `\\`, `\`).Replace(s)
}

// event turns the collected properties into a calendar spec in the
// start's zone.
func (v *vevent) event(file, defaultZone string) (Event, error) {
	ev := Event{UID: v.uid, Summary: v.summary, Description: v.desc, Line: v.begin}
	if v.start == nil {
		return ev, &Error{file, v.begin, "VEVENT has no DTSTART"}
	}
	zone, start, allDay, err := dateTime(*v.start, defaultZone)
	if err != nil {
		return ev, &Error{file, v.start.n, err.Error()}
	}
	var end time.Time
	switch {
	case v.end != nil && v.duration != nil:
		return ev, &Error{file, v.duration.n, "VEVENT has both DTEND and DURATION"}
	case v.end != nil:
		ez, e, _, err := dateTime(*v.end, zone)
		if err != nil {
			return ev, &Error{file, v.end.n, err.Error()}
		}
		if ez != zone {
			return ev, &Error{file, v.end.n, fmt.Sprintf("DTEND is in %s but DTSTART in %s: give both in one zone", ez, zone)}
		}
		end = e
	case v.duration != nil:
		d, err := duration(v.duration.value)
		if err != nil {
			return ev, &Error{file, v.duration.n, err.Error()}
		}
		end = start.Add(d)
	case allDay:
		end = start.AddDate(0, 0, 1)
	default:
		return ev, &Error{file, v.start.n, "VEVENT has neither DTEND nor DURATION: a freeze needs an end"}
	}
	if !end.After(start) {
		return ev, &Error{file, v.begin, fmt.Sprintf("VEVENT ends (%s) before it starts (%s)", end.Format(window.WallLayout), start.Format(window.WallLayout))}
	}
	ev.Spec = window.CalendarSpec{TimeZone: zone, Start: start.Format(window.WallLayout), End: end.Format(window.WallLayout)}
	if v.rrule != nil {
		if _, err := window.ParseRule(v.rrule.value); err != nil {
			return ev, &Error{file, v.rrule.n, err.Error()}
		}
		ev.Spec.Rule = v.rrule.value
	}
	for _, l := range v.exdates {
		for _, val := range strings.Split(l.value, ",") {
			one := l
			one.value = val
			z, t, _, err := dateTime(one, zone)
			if err != nil {
				return ev, &Error{file, l.n, err.Error()}
			}
			if z != zone {
				loc, _ := time.LoadLocation(zone)
				t = wallIn(t, z, loc)
			}
			ev.Spec.Except = append(ev.Spec.Except, t.Format(window.WallLayout))
		}
	}
	if _, err := ev.Spec.Compile(); err != nil {
		return ev, &Error{file, v.begin, err.Error()}
	}
	return ev, nil
}

// wallIn converts a wall reading in zone from to the wall reading of the
// same instant in loc.
func wallIn(wall time.Time, from string, loc *time.Location) time.Time {
	fl, err := time.LoadLocation(from)
	if err != nil || loc == nil {
		return wall
	}
	in := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, fl).In(loc)
	return time.Date(in.Year(), in.Month(), in.Day(), in.Hour(), in.Minute(), in.Second(), 0, time.UTC)
}

// dateTime reads a DATE or DATE-TIME value: its zone (TZID, UTC for a
// trailing Z, else defaultZone), its wall reading coded as UTC, and
// whether it is a date.
func dateTime(l line, defaultZone string) (zone string, wall time.Time, date bool, err error) {
	v := strings.TrimSpace(l.value)
	zone = defaultZone
	if tz, ok := l.params["TZID"]; ok {
		tz = strings.TrimPrefix(tz, "/")
		if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
			return "", wall, false, fmt.Errorf("%s: TZID %q is not an IANA time zone name (such as Europe/Paris)", l.name, tz)
		}
		zone = tz
	}
	if l.params["VALUE"] == "DATE" || len(v) == 8 {
		t, err := time.Parse("20060102", v)
		if err != nil {
			return "", wall, false, fmt.Errorf("%s: date %q: want YYYYMMDD", l.name, v)
		}
		return zone, t, true, nil
	}
	if strings.HasSuffix(v, "Z") {
		t, err := time.Parse("20060102T150405Z", v)
		if err != nil {
			return "", wall, false, fmt.Errorf("%s: time %q: want YYYYMMDDTHHMMSSZ", l.name, v)
		}
		if _, ok := l.params["TZID"]; ok {
			return "", wall, false, fmt.Errorf("%s: a UTC time (…Z) with a TZID", l.name)
		}
		return "UTC", t, false, nil
	}
	t, err := time.Parse("20060102T150405", v)
	if err != nil {
		return "", wall, false, fmt.Errorf("%s: time %q: want YYYYMMDDTHHMMSS", l.name, v)
	}
	return zone, t, false, nil
}

// duration parses an iCalendar DURATION (P1D, PT8H, P1W, P1DT12H).
func duration(s string) (time.Duration, error) {
	bad := fmt.Errorf("DURATION %q: want P[nW] or P[nD][T[nH][nM][nS]]", s)
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	if !strings.HasPrefix(s, "P") || len(s) < 3 {
		return 0, bad
	}
	var d time.Duration
	inTime := false
	num := 0
	digits := false
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			num, digits = num*10+int(r-'0'), true
			continue
		case r == 'T':
			inTime = true
			continue
		}
		if !digits {
			return 0, bad
		}
		unit := map[rune]time.Duration{'W': 7 * 24 * time.Hour, 'D': 24 * time.Hour}
		if inTime {
			unit = map[rune]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}
		}
		u, ok := unit[r]
		if !ok {
			return 0, bad
		}
		d += time.Duration(num) * u
		num, digits = 0, false
	}
	if digits || d <= 0 {
		return 0, bad
	}
	return d, nil
}
