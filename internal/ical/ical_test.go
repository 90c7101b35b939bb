package ical

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/window"
)

const holidays = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp//Change calendar//EN\r\n" +
	"BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n" +
	"BEGIN:VEVENT\r\nUID:eoq@example.com\r\nSUMMARY:End of quarter\\, finance close\r\n" +
	"DTSTART;TZID=Europe/Paris:20261224T000000\r\nDTEND;TZID=Europe/Paris:20270101T000000\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:patch-tuesday@example.com\r\nSUMMARY:Patch Tuesday\r\n" +
	"DTSTART;TZID=America/New_York:20260113T100000\r\nDURATION:PT24H\r\n" +
	"RRULE:FREQ=MONTHLY;BYDAY=2TU\r\nEXDATE;TZID=America/New_York:20260210T100000,\r\n 20260310T100000\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:xmas\r\nSUMMARY:Christmas\r\nDTSTART;VALUE=DATE:20261225\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

func TestParse(t *testing.T) {
	evs, err := Parse("holidays.ics", []byte(holidays), "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	want := []window.CalendarSpec{
		{TimeZone: "Europe/Paris", Start: "2026-12-24T00:00", End: "2027-01-01T00:00"},
		{TimeZone: "America/New_York", Start: "2026-01-13T10:00", End: "2026-01-14T10:00", Rule: "FREQ=MONTHLY;BYDAY=2TU",
			Except: []string{"2026-02-10T10:00", "2026-03-10T10:00"}},
		{TimeZone: "Europe/Berlin", Start: "2026-12-25T00:00", End: "2026-12-26T00:00", Rule: "FREQ=YEARLY"},
	}
	for i, ev := range evs {
		if got, w := ev.Spec, want[i]; got.TimeZone != w.TimeZone || got.Start != w.Start || got.End != w.End || got.Rule != w.Rule ||
			strings.Join(got.Except, ",") != strings.Join(w.Except, ",") {
			t.Errorf("event %d (%s): %+v, want %+v", i, ev.Summary, got, w)
		}
	}
	if evs[0].Summary != "End of quarter, finance close" || evs[0].UID != "eoq@example.com" || evs[1].Line != 18 {
		t.Errorf("event 0: %+v; event 1 line %d", evs[0], evs[1].Line)
	}
	c, err := evs[1].Spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	ny := c.Location()
	if ok, _ := c.At(time.Date(2026, 2, 10, 12, 0, 0, 0, ny)); ok {
		t.Error("February's Patch Tuesday is excepted")
	}
	if ok, until := c.At(time.Date(2026, 4, 14, 12, 0, 0, 0, ny)); !ok || !until.Equal(time.Date(2026, 4, 15, 10, 0, 0, 0, ny)) {
		t.Errorf("April's Patch Tuesday: %v until %s", ok, until)
	}
}

func TestParseErrors(t *testing.T) {
	wrap := func(ev string) string {
		return "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\n" + ev + "END:VEVENT\nEND:VCALENDAR\n"
	}
	for _, tc := range []struct{ in, want string }{
		{wrap("SUMMARY:x\n"), "f.ics:3: VEVENT has no DTSTART"},
		{wrap("DTSTART;TZID=W. Europe Standard Time:20260101T000000\nDTEND:20260102T000000Z\n"), `f.ics:4: DTSTART: TZID "W. Europe Standard Time" is not an IANA time zone name`},
		{wrap("DTSTART:20260101T000000Z\nDTEND:20260102T000000Z\nRRULE:FREQ=HOURLY\n"), "f.ics:6: rule \"FREQ=HOURLY\""},
		{wrap("DTSTART:20260101T000000Z\nDTEND:20251231T000000Z\n"), "f.ics:3: VEVENT ends (2025-12-31T00:00) before it starts"},
		{wrap("DTSTART:20260101T000000Z\n"), "f.ics:4: VEVENT has neither DTEND nor DURATION"},
		{wrap("DTSTART:20260101T000000Z\nDTEND:2026-01-02\n"), `f.ics:5: DTEND: time "2026-01-02"`},
		{wrap("DTSTART:20260101T000000Z\nDURATION:PT8H\nRDATE:20260301T000000Z\n"), "f.ics:6: RDATE is not supported"},
		{wrap("DTSTART:20260101T000000Z\nDTSTART:20260102T000000Z\nDURATION:P1D\n"), "f.ics:5: DTSTART given twice in the VEVENT (first at line 4)"},
		{"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101T000000Z\nDURATION:P1D\nEND:VCALENDAR\n", "f.ics:2: VEVENT not closed"},
		{"BEGIN:VCALENDAR\nEND:VCALENDAR\n", "f.ics:1: no VEVENT in the file"},
		{"hello\n", "f.ics:1: line \"hello\" has no ':'"},
		{wrap("DTSTART:20260101T000000Z\nDURATION:8 hours\n"), `f.ics:5: DURATION "8 hours"`},
	} {
		evs, err := Parse("f.ics", []byte(tc.in), "UTC")
		if err == nil || !strings.Contains(err.Error(), tc.want) || evs != nil {
			t.Errorf("Parse(%q) = %d events, %v; want an error containing %q", tc.in, len(evs), err, tc.want)
		}
	}
}
