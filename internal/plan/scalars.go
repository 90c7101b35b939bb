package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// String formats the quantity as it is written in a plan: "5" or "20%".
func (q Quantity) String() string {
	if q.Percent {
		return strconv.FormatFloat(q.Value, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(q.Count)
}

// Count returns a Quantity of n nodes.
func Count(n int) *Quantity { return &Quantity{Count: n} }

// Percent returns a Quantity of v percent. It does not check the range.
func Percent(v float64) *Quantity { return &Quantity{Value: v, Percent: true} }

// MarshalYAML writes a count as an integer and a percent as "20%".
func (q Quantity) MarshalYAML() (any, error) {
	if q.Percent {
		return q.String(), nil
	}
	return q.Count, nil
}

// MarshalJSON writes a count as a number and a percent as "20%".
func (q Quantity) MarshalJSON() ([]byte, error) {
	if q.Percent {
		return json.Marshal(q.String())
	}
	return json.Marshal(q.Count)
}

// UnmarshalJSON reads an integer or a percent string, with the rules of
// ParseQuantity.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseQuantity(s)
		if err != nil {
			return err
		}
		*q = v
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("quantity: expected a count (5) or a percent (\"20%%\"), got %s", b)
	}
	*q = Quantity{Count: n}
	return nil
}

// errQuantity is the message every malformed quantity gets.
var errQuantity = errors.New(`expected a count (5) or a percent ("20%")`)

// ParseQuantity parses a percent string ("20%", "0.5%"; 0 < p <= 100). A
// string of digits alone is refused: counts are written as YAML integers.
func ParseQuantity(s string) (Quantity, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return Quantity{}, errQuantity
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(num, "eExXpP_ +") {
		return Quantity{}, errQuantity
	}
	if v <= 0 || v > 100 {
		return Quantity{}, fmt.Errorf("a percent must be more than 0%% and at most 100%%, got %q", s)
	}
	return Quantity{Value: v, Percent: true}, nil
}

// ParseDuration parses a Go duration ("90s", "1h30m") where "d" is also a
// unit of 24 hours ("2d", "1d12h"). Negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("a duration must not be negative, got %q", s)
	}
	var days float64
	var rest strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		k := j
		for k < len(s) && !(s[k] >= '0' && s[k] <= '9' || s[k] == '.') {
			k++
		}
		if s[j:k] == "d" {
			n, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil || j == i {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			days += n
		} else {
			rest.WriteString(s[i:k])
		}
		if k == i {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		i = k
	}
	var d time.Duration
	if rest.Len() > 0 {
		var err error
		d, err = time.ParseDuration(rest.String())
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (write it like \"90s\", \"10m\", \"1h30m\" or \"2d\")", s)
		}
	}
	if days > 0 {
		if days > float64(math.MaxInt64/int64(24*time.Hour)) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		d += time.Duration(days * float64(24*time.Hour))
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return Duration(d), nil
}

// String writes whole days as "2d" and anything else as Go does, without
// trailing zero units ("1h30m", "10m", "90s" is "1m30s").
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalYAML writes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes the duration as a string, as String does.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string with the rules of ParseDuration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: expected a string like \"90s\" or \"2d\", got %s", b)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// parseFreezeTime reads an RFC 3339 time or a date (YYYY-MM-DD, UTC
// midnight). The result is in UTC, so that equal instants compare equal.
func parseFreezeTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf(`expected a date ("2025-12-20") or an RFC 3339 time ("2025-12-20T18:00:00Z"), got %q`, s)
}
