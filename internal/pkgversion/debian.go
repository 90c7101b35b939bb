package pkgversion

import "strings"

// Debian orders two package versions as dpkg does (dpkg's
// verrevcmp): an optional numeric epoch before ':', then the rest
// the upstream version, then the revision after the last '-' (an
// absent revision orders like "0", as in dpkg), each compared in runs of non-digits (letters
// before other characters, '~' before anything, even the end) and of
// digits (numerically). It returns -1, 0 or +1. Any strings compare;
// nothing is rejected.
//
// Upstream and revision are compared apart, not as one string:
// 1.2.3+dfsg-1 is newer than 1.2.3-1 although '+' sorts before '-'.
func Debian(a, b string) int {
	ea, ra := epoch(a)
	eb, rb := epoch(b)
	if c := compareDigits(ea, eb); c != 0 {
		return c
	}
	ua, va := revision(ra)
	ub, vb := revision(rb)
	if c := compareRest(ua, ub); c != 0 {
		return c
	}
	return compareRest(va, vb)
}

func revision(v string) (upstream, rev string) {
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

func epoch(v string) (string, string) {
	if e, rest, ok := strings.Cut(v, ":"); ok && e != "" && strings.Trim(e, "0123456789") == "" {
		return e, rest
	}
	return "0", v
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// order is dpkg's weight of a character in a non-digit run.
func order(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c == '~':
		return -1
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return int(c)
	}
	return int(c) + 256
}

func compareRest(a, b string) int {
	for a != "" || b != "" {
		i, j := 0, 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			oa, ob := order(a, i), order(b, j)
			if i < len(a) && isDigit(a[i]) {
				oa = 0
			}
			if j < len(b) && isDigit(b[j]) {
				ob = 0
			}
			if oa != ob {
				return sign(oa - ob)
			}
			if i < len(a) && !isDigit(a[i]) {
				i++
			}
			if j < len(b) && !isDigit(b[j]) {
				j++
			}
		}
		a, b = a[i:], b[j:]
		i, j = 0, 0
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareDigits(a[:i], b[:j]); c != 0 {
			return c
		}
		a, b = a[i:], b[j:]
	}
	return 0
}

// compareDigits compares two runs of digits numerically ("" is 0).
func compareDigits(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
