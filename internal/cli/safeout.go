package cli

import (
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// terminalSafe is the one place the CLI's output passes through on its
// way to the terminal: node facts, labels, reasons and every other text
// a server (or a node reporting to it) chose could otherwise carry
// escape sequences that rewrite the screen, retitle the window, hide
// lines or inject input. It writes control characters visibly escaped:
// C0 (except newline and tab) and DEL as \xHH, C1 as \u00HH, the
// Unicode bidirectional overrides as \uHHHH, and bytes that are not
// UTF-8 as \xHH. JSON output stays valid JSON (its encoder escapes C0
// itself; the \u escapes are JSON's own) and YAML output is quoted by
// its encoder.
type terminalSafe struct {
	mu    sync.Mutex
	w     io.Writer
	carry []byte // an incomplete UTF-8 sequence, kept for the next Write
}

func newTerminalSafe(w io.Writer) *terminalSafe { return &terminalSafe{w: w} }

func (t *terminalSafe) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	buf := append(t.carry, p...)
	t.carry = nil
	out := make([]byte, 0, len(buf))
	for i := 0; i < len(buf); {
		c := buf[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
				out = fmt.Appendf(out, `\x%02x`, c)
			} else {
				out = append(out, c)
			}
			i++
			continue
		}
		if !utf8.FullRune(buf[i:]) {
			t.carry = append([]byte(nil), buf[i:]...)
			break
		}
		r, n := utf8.DecodeRune(buf[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = fmt.Appendf(out, `\x%02x`, c)
		case r >= 0x80 && r < 0xa0, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, buf[i:i+n]...)
		}
		i += n
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes an incomplete UTF-8 sequence left at the end, escaped.
func (t *terminalSafe) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []byte
	for _, c := range t.carry {
		out = fmt.Appendf(out, `\x%02x`, c)
	}
	t.carry = nil
	if len(out) > 0 {
		_, _ = t.w.Write(out)
	}
}
