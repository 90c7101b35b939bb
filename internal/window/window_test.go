package window

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustNew(t *testing.T, tz string, spans ...Span) *Weekly {
	t.Helper()
	w, err := New("test", tz, spans)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func clock(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := ParseClock(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNewErrors(t *testing.T) {
	sat := []time.Weekday{time.Saturday}
	tests := []struct {
		tz    string
		spans []Span
		msg   string
	}{
		{"Mars/Olympus", []Span{{sat, 0, time.Hour}}, "load time zone"},
		{"", []Span{{sat, 0, time.Hour}}, "IANA"},
		{"Local", []Span{{sat, 0, time.Hour}}, "IANA"},
		{"UTC", []Span{{sat, 0, 0}}, "must be positive"},
		{"UTC", []Span{{sat, 0, -time.Hour}}, "must be positive"},
		{"UTC", []Span{{sat, 0, week + time.Second}}, "longer than 7 days"},
		{"UTC", []Span{{nil, 0, time.Hour}}, "no days"},
		{"UTC", []Span{{sat, 24 * time.Hour, time.Hour}}, "not within a day"},
		{"UTC", []Span{{sat, -time.Minute, time.Hour}}, "not within a day"},
		{"UTC", []Span{{[]time.Weekday{7}, 0, time.Hour}}, "invalid weekday"},
	}
	for _, tt := range tests {
		_, err := New("w", tt.tz, tt.spans)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("New(%q, %v) = %v, want error containing %q", tt.tz, tt.spans, err, tt.msg)
		}
	}
	if _, err := New("w", "UTC", []Span{{[]time.Weekday{time.Monday}, 0, week}}); err != nil {
		t.Errorf("7-day span: %v", err)
	}
}

func TestWeeklyAt(t *testing.T) {
	ber := mustLoc(t, "Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, ber)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Sat 02:00–06:00, and Fri 22:00 + 8h (crosses midnight into Sat 06:00,
	// overlapping the Sat span: merged Fri 22:00–Sat 06:00), and
	// Sun 23:00 + 2h crossing the week end into Mon 01:00.
	w := mustNew(t, "Europe/Berlin",
		Span{[]time.Weekday{time.Saturday}, clock(t, "02:00"), 4 * time.Hour},
		Span{[]time.Weekday{time.Friday}, clock(t, "22:00"), 8 * time.Hour},
		Span{[]time.Weekday{time.Sunday}, clock(t, "23:00"), 2 * time.Hour},
	)
	tests := []struct {
		t      string
		open   bool
		closes string
	}{
		{"2025-01-10 21:59", false, ""}, // Fri
		{"2025-01-10 22:00", true, "2025-01-11 06:00"},
		{"2025-01-11 01:00", true, "2025-01-11 06:00"},
		{"2025-01-11 05:59", true, "2025-01-11 06:00"},
		{"2025-01-11 06:00", false, ""},
		{"2025-01-12 23:30", true, "2025-01-13 01:00"}, // Sun into Mon
		{"2025-01-13 00:59", true, "2025-01-13 01:00"},
		{"2025-01-13 01:00", false, ""},
		{"2025-01-15 12:00", false, ""},
	}
	for _, tt := range tests {
		open, closes := w.At(at(tt.t))
		var want time.Time
		if tt.closes != "" {
			want = at(tt.closes)
		}
		if open != tt.open || !closes.Equal(want) {
			t.Errorf("At(%s) = %v, %v; want %v, %v", tt.t, open, closes, tt.open, want)
		}
	}
	if got := w.Describe(at("2025-01-15 12:00")); got != "opens Fri 22:00 Europe/Berlin" {
		t.Errorf("Describe closed = %q", got)
	}
	if got := w.Describe(at("2025-01-11 03:00")); got != "open until Sat 06:00 Europe/Berlin" {
		t.Errorf("Describe open = %q", got)
	}
	if got := w.NextOpen(at("2025-01-11 07:00")); !got.Equal(at("2025-01-12 23:00")) {
		t.Errorf("NextOpen = %v", got)
	}
	if got := w.NextOpen(at("2025-01-11 03:00")); !got.Equal(at("2025-01-11 03:00")) {
		t.Errorf("NextOpen while open = %v", got)
	}
}

func TestCanStart(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Mon–Fri 01:00–03:00 UTC and Sat 01:00–09:00.
	w := mustNew(t, "UTC",
		Span{[]time.Weekday{1, 2, 3, 4, 5}, time.Hour, 2 * time.Hour},
		Span{[]time.Weekday{time.Saturday}, time.Hour, 8 * time.Hour},
	)
	tests := []struct {
		t      string
		cutoff time.Duration
		ok     bool
		next   string
	}{
		{"2025-01-06 01:00", time.Hour, true, "2025-01-06 01:00"},         // Mon
		{"2025-01-06 02:00", time.Hour, true, "2025-01-06 02:00"},         // ends exactly at close
		{"2025-01-06 02:01", time.Hour, false, "2025-01-07 01:00"},        // too late today
		{"2025-01-06 00:00", time.Hour, false, "2025-01-06 01:00"},        // before opening
		{"2025-01-06 02:30", 3 * time.Hour, false, "2025-01-11 01:00"},    // only Saturday is long enough
		{"2025-01-11 05:00", 4 * time.Hour, true, "2025-01-11 05:00"},     // Sat
		{"2025-01-11 05:01", 4 * time.Hour, false, "2025-01-18 01:00"},    // next Saturday
		{"2025-01-06 01:00", 9 * time.Hour, false, ""},                    // never
		{"2025-01-06 02:59", 0, true, "2025-01-06 02:59"},                 // zero cutoff
		{"2025-01-06 03:00", 0, false, "2025-01-07 01:00"},                // closed at close
		{"2025-01-06 03:00", -time.Hour, false, "2025-01-07 01:00"},       // negative cutoff = 0
		{"2025-01-10 02:30", 2 * time.Hour, false, "2025-01-11 01:00"},    // Fri → Sat
		{"2025-01-11 09:00", 30 * time.Minute, false, "2025-01-13 01:00"}, // Sat → Mon
	}
	for _, tt := range tests {
		ok, next := w.CanStart(utc(tt.t), tt.cutoff)
		var want time.Time
		if tt.next != "" {
			want = utc(tt.next)
		}
		if ok != tt.ok || !next.Equal(want) {
			t.Errorf("CanStart(%s, %v) = %v, %v; want %v, %v", tt.t, tt.cutoff, ok, next, tt.ok, want)
		}
	}
}

// TestDST pins the documented behaviour on Europe/Berlin's 2025 transitions:
// clocks jump 02:00 CET → 03:00 CEST on Sun 30 March and fall back
// 03:00 CEST → 02:00 CET on Sun 26 October.
func TestDST(t *testing.T) {
	ber := mustLoc(t, "Europe/Berlin")
	sun := []time.Weekday{time.Sunday}
	tests := []struct {
		name        string
		span        Span
		probe       time.Time // UTC
		open        bool
		opens       time.Time // UTC, from NextOpen(probe day start)
		closes      time.Time // UTC
		wantNoOpen  bool
		description string
	}{
		{
			name:  "spring start in gap opens at the jump",
			span:  Span{sun, clock(t, "02:30"), 2 * time.Hour}, // 02:30–04:30 local
			probe: time.Date(2025, 3, 30, 1, 30, 0, 0, time.UTC), opens: time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC),
			open: true, closes: time.Date(2025, 3, 30, 2, 30, 0, 0, time.UTC), // 04:30 CEST
		},
		{
			name:  "spring span across the gap keeps wall-clock ends",
			span:  Span{sun, clock(t, "01:00"), 4 * time.Hour}, // 01:00 CET – 05:00 CEST = 3h
			probe: time.Date(2025, 3, 30, 2, 59, 0, 0, time.UTC), opens: time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC),
			open: true, closes: time.Date(2025, 3, 30, 3, 0, 0, 0, time.UTC),
		},
		{
			name:  "fall start in repeated hour opens at first occurrence",
			span:  Span{sun, clock(t, "02:30"), 2 * time.Hour}, // 02:30 CEST – 04:30 CET = 3h
			probe: time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC), opens: time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC),
			open: true, closes: time.Date(2025, 10, 26, 3, 30, 0, 0, time.UTC),
		},
		{
			name:  "daily midnight to midnight is contiguous on a 25h day",
			span:  Span{[]time.Weekday{time.Saturday, time.Sunday, time.Monday}, 0, 24 * time.Hour},
			probe: time.Date(2025, 10, 26, 22, 30, 0, 0, time.UTC), opens: time.Date(2025, 10, 24, 22, 0, 0, 0, time.UTC),
			open: true, closes: time.Date(2025, 10, 27, 23, 0, 0, 0, time.UTC), // Tue 00:00 CET
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustNew(t, "Europe/Berlin", tt.span)
			open, closes := w.At(tt.probe)
			if open != tt.open || !closes.Equal(tt.closes) {
				t.Errorf("At(%v) = %v, %v; want %v, %v", tt.probe.In(ber), open, closes.In(ber), tt.open, tt.closes.In(ber))
			}
			from := tt.opens.Add(-time.Hour)
			if got := w.NextOpen(from); !got.Equal(tt.opens) {
				t.Errorf("NextOpen(%v) = %v, want %v", from.In(ber), got.In(ber), tt.opens.In(ber))
			}
		})
	}
	// A span wholly inside the skipped hour does not open that Sunday.
	w := mustNew(t, "Europe/Berlin", Span{sun, clock(t, "02:10"), 40 * time.Minute})
	from := time.Date(2025, 3, 29, 12, 0, 0, 0, time.UTC)
	want := time.Date(2025, 4, 6, 0, 10, 0, 0, time.UTC) // next Sunday 02:10 CEST
	if got := w.NextOpen(from); !got.Equal(want) {
		t.Errorf("gap-only span: NextOpen = %v, want %v", got.In(ber), want.In(ber))
	}
	// America/New_York: the gap is 02:00–03:00 local, resolution is the same.
	ny := mustNew(t, "America/New_York", Span{sun, clock(t, "02:30"), time.Hour})
	jump := time.Date(2025, 3, 9, 7, 0, 0, 0, time.UTC) // 03:00 EDT
	if got := ny.NextOpen(jump.Add(-3 * time.Hour)); !got.Equal(jump) {
		t.Errorf("New York gap: NextOpen = %v, want %v", got, jump)
	}
}

func TestAlwaysAndNever(t *testing.T) {
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	now := time.Date(2025, 10, 25, 12, 0, 0, 0, time.UTC)
	always := mustNew(t, "Europe/Berlin", Span{all, 0, 24 * time.Hour})
	if open, closes := always.At(now); !open || !closes.IsZero() {
		t.Errorf("always At = %v, %v", open, closes)
	}
	if ok, next := always.CanStart(now, 72*time.Hour); !ok || !next.Equal(now) {
		t.Errorf("always CanStart = %v, %v", ok, next)
	}
	if got := always.Describe(now); got != "always open" {
		t.Errorf("Describe = %q", got)
	}
	never := mustNew(t, "UTC")
	if open, _ := never.At(now); open {
		t.Error("never is open")
	}
	if got := never.NextOpen(now); !got.IsZero() {
		t.Errorf("never NextOpen = %v", got)
	}
	if ok, next := never.CanStart(now, 0); ok || !next.IsZero() {
		t.Errorf("never CanStart = %v, %v", ok, next)
	}
	if got := never.Describe(now); got != "never opens" {
		t.Errorf("Describe = %q", got)
	}
}

// TestProperties checks, for random windows and instants in zones with DST
// (including Lord Howe's 30-minute shift), that CanStart true implies open
// until at least t+cutoff, that CanStart's next instant satisfies CanStart,
// and that NextOpen returns an open instant with nothing open before it.
func TestProperties(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata"}
	rng := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 120 {
		var spans []Span
		for range 1 + rng.IntN(3) {
			var days []time.Weekday
			for d := range 7 {
				if rng.IntN(3) == 0 {
					days = append(days, time.Weekday(d))
				}
			}
			if len(days) == 0 {
				days = []time.Weekday{time.Weekday(rng.IntN(7))}
			}
			spans = append(spans, Span{days, time.Duration(rng.IntN(96)) * 15 * time.Minute,
				time.Duration(1+rng.IntN(4*30)) * 15 * time.Minute})
		}
		w := mustNew(t, zones[i%len(zones)], spans...)
		for range 10 {
			// Bias instants towards transition dates by sampling the whole year.
			tm := base.Add(time.Duration(rng.Int64N(int64(365 * day))))
			cutoff := time.Duration(rng.IntN(8*60)) * time.Minute
			ok, next := w.CanStart(tm, cutoff)
			if ok {
				open, closes := w.At(tm)
				if !open || (!closes.IsZero() && closes.Before(tm.Add(cutoff))) {
					t.Fatalf("%s %v: CanStart(%v, %v) but At = %v, %v", w.loc, spans, tm, cutoff, open, closes)
				}
			} else if !next.IsZero() {
				if !next.After(tm) {
					t.Fatalf("CanStart next %v not after %v", next, tm)
				}
				if ok2, _ := w.CanStart(next, cutoff); !ok2 {
					t.Fatalf("%s %v: CanStart(%v,%v) next=%v but CanStart(next) false", w.loc, spans, tm, cutoff, next)
				}
				if ok3, _ := w.CanStart(next.Add(-time.Minute), cutoff); ok3 && next.Add(-time.Minute).After(tm) {
					t.Fatalf("%s %v: CanStart holds a minute before next=%v", w.loc, spans, next)
				}
			}
			no := w.NextOpen(tm)
			if no.IsZero() {
				t.Fatalf("NextOpen zero for non-empty window")
			}
			if open, _ := w.At(no); !open {
				t.Fatalf("%s %v: NextOpen(%v) = %v is not open", w.loc, spans, tm, no)
			}
			for s := tm; s.Before(no); s = s.Add(23 * time.Minute) {
				if open, _ := w.At(s); open {
					t.Fatalf("%s %v: open at %v before NextOpen(%v) = %v", w.loc, spans, s, tm, no)
				}
			}
		}
	}
}

func TestParseDays(t *testing.T) {
	tests := []struct {
		in   []string
		want []time.Weekday
		err  bool
	}{
		{[]string{"Mon"}, []time.Weekday{time.Monday}, false},
		{[]string{"monday", "TUESDAY", " wed "}, []time.Weekday{1, 2, 3}, false},
		{[]string{"Sat", "Sun", "sat"}, []time.Weekday{6, 0}, false},
		{[]string{"mon-fri"}, []time.Weekday{1, 2, 3, 4, 5}, false},
		{[]string{"Fri-Mon"}, []time.Weekday{5, 6, 0, 1}, false},
		{[]string{"Mo"}, nil, true},
		{[]string{"Moonday"}, nil, true},
		{[]string{"mon-xyz"}, nil, true},
		{nil, nil, true},
	}
	for _, tt := range tests {
		got, err := ParseDays(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("ParseDays(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseClock(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"02:00", 2 * time.Hour, false},
		{"23:59", 23*time.Hour + 59*time.Minute, false},
		{"00:00", 0, false},
		{"06:30:15", 6*time.Hour + 30*time.Minute + 15*time.Second, false},
		{"24:00", 0, true},
		{"2:00", 0, true},
		{"02:60", 0, true},
		{"0200", 0, true},
		{"ab:cd", 0, true},
		{"-1:00", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseClock(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseClock(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFreezes(t *testing.T) {
	d := func(day, hour int) time.Time { return time.Date(2025, 12, day, hour, 0, 0, 0, time.UTC) }
	fs := []Freeze{
		{Name: "xmas", From: d(20, 0), To: d(27, 0), Reason: "holidays"},
		{Name: "nye", From: d(27, 0), To: d(31, 12)},   // touches xmas
		{Name: "audit", From: d(30, 0), To: d(31, 18)}, // overlaps nye
		{Name: "bogus", From: d(10, 0), To: d(9, 0)},
	}
	tests := []struct {
		t      time.Time
		frozen bool
		name   string
		end    time.Time
	}{
		{d(19, 23), false, "", time.Time{}},
		{d(20, 0), true, "xmas", d(31, 18)},
		{d(26, 23), true, "xmas", d(31, 18)},
		{d(27, 0), true, "nye", d(31, 18)},
		{d(31, 12), true, "audit", d(31, 18)},
		{d(31, 18), false, "", time.Time{}},
		{d(9, 12), false, "", time.Time{}},
	}
	for _, tt := range tests {
		f, ok := Frozen(fs, tt.t)
		if ok != tt.frozen || f.Name != tt.name {
			t.Errorf("Frozen(%v) = %q, %v; want %q, %v", tt.t, f.Name, ok, tt.name, tt.frozen)
		}
		if got := FreezeEnd(fs, tt.t); !got.Equal(tt.end) {
			t.Errorf("FreezeEnd(%v) = %v, want %v", tt.t, got, tt.end)
		}
	}
	if fs[3].Validate() == nil || fs[0].Validate() != nil {
		t.Error("Validate")
	}
}
