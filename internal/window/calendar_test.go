package window

import (
	"strings"
	"testing"
	"time"
)

func mustCalendar(t *testing.T, s CalendarSpec) *Calendar {
	t.Helper()
	c, err := s.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func occurrences(c *Calendar, n int) []string {
	var out []string
	c.each(func(from, to time.Time) bool {
		out = append(out, from.In(c.loc).Format("Mon 2006-01-02 15:04")+"–"+to.In(c.loc).Format("Mon 01-02 15:04"))
		return len(out) < n
	})
	return out
}

func TestCalendarRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec CalendarSpec
		want []string
	}{
		{"patch tuesday", CalendarSpec{TimeZone: "America/New_York", Start: "2026-01-13T10:00", End: "2026-01-14T10:00", Rule: "FREQ=MONTHLY;BYDAY=2TU"},
			[]string{"Tue 2026-01-13 10:00–Wed 01-14 10:00", "Tue 2026-02-10 10:00–Wed 02-11 10:00", "Tue 2026-03-10 10:00–Wed 03-11 10:00", "Tue 2026-04-14 10:00–Wed 04-15 10:00"}},
		{"end of quarter", CalendarSpec{TimeZone: "Europe/Paris", Start: "2026-03-25", End: "2026-04-01", Rule: "FREQ=YEARLY;BYMONTH=3,6,9,12;BYMONTHDAY=25"},
			[]string{"Wed 2026-03-25 00:00–Wed 04-01 00:00", "Thu 2026-06-25 00:00–Thu 07-02 00:00", "Fri 2026-09-25 00:00–Fri 10-02 00:00", "Fri 2026-12-25 00:00–Fri 01-01 00:00"}},
		{"weekly with count and exdate", CalendarSpec{TimeZone: "UTC", Start: "2026-03-02T18:00", End: "2026-03-02T20:00", Rule: "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4", Except: []string{"2026-03-04T18:00"}},
			[]string{"Mon 2026-03-02 18:00–Mon 03-02 20:00", "Mon 2026-03-09 18:00–Mon 03-09 20:00", "Wed 2026-03-11 18:00–Wed 03-11 20:00"}},
		{"last friday until", CalendarSpec{TimeZone: "UTC", Start: "2026-01-30T00:00", End: "2026-01-31T00:00", Rule: "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20260401T000000Z"},
			[]string{"Fri 2026-01-30 00:00–Sat 01-31 00:00", "Fri 2026-02-27 00:00–Sat 02-28 00:00", "Fri 2026-03-27 00:00–Sat 03-28 00:00"}},
		{"wall clock across DST", CalendarSpec{TimeZone: "Europe/Berlin", Start: "2026-03-28T18:00", End: "2026-03-29T08:00", Rule: "FREQ=DAILY;COUNT=2"},
			[]string{"Sat 2026-03-28 18:00–Sun 03-29 08:00", "Sun 2026-03-29 18:00–Mon 03-30 08:00"}},
		{"one-off", CalendarSpec{TimeZone: "Europe/Paris", Start: "2026-12-24", End: "2026-12-27"},
			[]string{"Thu 2026-12-24 00:00–Sun 12-27 00:00"}},
		{"31st skips short months", CalendarSpec{TimeZone: "UTC", Start: "2026-01-31", End: "2026-02-01", Rule: "FREQ=MONTHLY;COUNT=3"},
			[]string{"Sat 2026-01-31 00:00–Sun 02-01 00:00", "Tue 2026-03-31 00:00–Wed 04-01 00:00", "Sun 2026-05-31 00:00–Mon 06-01 00:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 10 // a bounded rule must stop by itself
			if !strings.Contains(tc.spec.Rule, "COUNT") && !strings.Contains(tc.spec.Rule, "UNTIL") && tc.spec.Rule != "" {
				n = len(tc.want)
			}
			got := occurrences(mustCalendar(t, tc.spec), n)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestCalendarAt(t *testing.T) {
	c := mustCalendar(t, CalendarSpec{TimeZone: "Europe/Paris", Start: "2026-12-24", End: "2026-12-26", Rule: "FREQ=DAILY;COUNT=3"})
	paris := c.Location()
	in := time.Date(2026, 12, 24, 12, 0, 0, 0, paris)
	ok, until := c.At(in)
	// Overlapping daily periods of two days chain: 24th–26th, 25th–27th, 26th–28th.
	if !ok || !until.Equal(time.Date(2026, 12, 28, 0, 0, 0, 0, paris)) || until.Location() != paris {
		t.Fatalf("At(%s) = %v, %s; want frozen until 2026-12-28 00:00 Paris", in, ok, until)
	}
	if ok, _ := c.At(time.Date(2026, 12, 28, 0, 0, 0, 0, paris)); ok {
		t.Fatal("the end is exclusive")
	}
	if ok, _ := c.At(time.Date(2026, 12, 23, 23, 59, 0, 0, paris)); ok {
		t.Fatal("frozen before the start")
	}
	from, _ := c.Next(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if !from.Equal(time.Date(2026, 12, 24, 0, 0, 0, 0, paris)) {
		t.Fatalf("Next = %s", from)
	}
	if from, _ := c.Next(in); !from.Equal(time.Date(2026, 12, 25, 0, 0, 0, 0, paris)) {
		t.Fatalf("Next after the first start = %s", from)
	}
}

func TestCalendarAtChainsAYearAtMost(t *testing.T) {
	c := mustCalendar(t, CalendarSpec{TimeZone: "UTC", Start: "2026-01-01", End: "2026-01-02", Rule: "FREQ=DAILY"})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ok, until := c.At(now)
	if !ok || until.Before(now.Add(365*day)) || until.After(now.Add(368*day)) {
		t.Fatalf("a freeze in force every day: At = %v, %s; want in force until about a year ahead", ok, until)
	}
}

func TestParseRuleErrors(t *testing.T) {
	for in, want := range map[string]string{
		"FREQ=HOURLY":                       "want DAILY, WEEKLY, MONTHLY or YEARLY",
		"BYDAY=MO":                          "no FREQ",
		"FREQ=WEEKLY;BYDAY=2TU":             "an ordinal BYDAY (2TU) needs FREQ=MONTHLY or YEARLY",
		"FREQ=DAILY;BYSETPOS=1":             "BYSETPOS is not supported",
		"FREQ=DAILY;COUNT=2;UNTIL=20260101": "COUNT and UNTIL together",
		"FREQ=MONTHLY;BYMONTHDAY=32":        "want days 1 to 31",
		"FREQ=DAILY;FREQ=WEEKLY":            "FREQ given twice",
	} {
		if _, err := ParseRule(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRule(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
