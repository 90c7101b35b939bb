package window

import (
	"testing"
	"time"
)

func BenchmarkCanStart(b *testing.B) {
	w, err := New("b", "Europe/Berlin", []Span{
		{[]time.Weekday{1, 2, 3, 4, 5}, 2 * time.Hour, 4 * time.Hour},
		{[]time.Weekday{time.Saturday}, 22 * time.Hour, 10 * time.Hour},
	})
	if err != nil {
		b.Fatal(err)
	}
	t := time.Date(2025, 3, 29, 12, 0, 0, 0, time.UTC)
	for b.Loop() {
		w.CanStart(t, time.Hour)
	}
}
