package service

import (
	"bytes"
	"encoding/xml"
)

// LaunchdPlistPath is where macOS keeps the agent's daemon definition.
const LaunchdPlistPath = "/Library/LaunchDaemons/" + Label + ".plist"

// LaunchdPlist is s as a launchd daemon: started at boot (RunAtLoad),
// started again whenever it exits (KeepAlive; the agent exits with code 3
// to run a replaced program), as root (a daemon in /Library/LaunchDaemons
// without UserName), its output appended to s.LogFile.
func LaunchdPlist(s Spec) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	key := func(k string) { b.WriteString("\t<key>"); esc(&b, k); b.WriteString("</key>\n") }
	str := func(k, v string) { key(k); b.WriteString("\t<string>"); esc(&b, v); b.WriteString("</string>\n") }
	str("Label", s.Label)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	for _, a := range append([]string{s.Program}, s.Args...) {
		b.WriteString("\t\t<string>")
		esc(&b, a)
		b.WriteString("</string>\n")
	}
	b.WriteString("\t</array>\n")
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<true/>\n")
	// A crash loop is slowed down, not given up on.
	key("ThrottleInterval")
	b.WriteString("\t<integer>10</integer>\n")
	key("ProcessType")
	b.WriteString("\t<string>Background</string>\n")
	if s.LogFile != "" {
		str("StandardOutPath", s.LogFile)
		str("StandardErrorPath", s.LogFile)
	}
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes(), nil
}

func esc(b *bytes.Buffer, s string) { _ = xml.EscapeText(b, []byte(s)) }
