package service

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Name is the agent's service name (Windows) and launchd's label is
// Label.
const (
	Name        = "drover-agent"
	Label       = "dev.drover.agent"
	DisplayName = "drover agent"
	Description = "drover agent: executes the rolling-update steps of the drover server on this node"
)

// Spec is how the service manager starts the agent.
type Spec struct {
	Name, Label, DisplayName, Description string
	Program                               string   // absolute path of drover-agent
	Args                                  []string // its arguments
	LogFile                               string   // launchd: stdout and stderr
}

// ConfigPath is the agent's config file on goos.
func ConfigPath(goos string) string {
	switch goos {
	case "windows":
		return `C:\ProgramData\drover\agent.yaml`
	default:
		return "/etc/drover/agent.yaml"
	}
}

// DefaultSpec is the agent's service: program run with --config and the
// config file of goos.
func DefaultSpec(goos, program string) Spec {
	s := Spec{Name: Name, Label: Label, DisplayName: DisplayName, Description: Description,
		Program: program, Args: []string{"--config", ConfigPath(goos)}}
	if goos == "darwin" {
		s.LogFile = "/var/log/drover-agent.log"
	}
	return s
}

// Validate checks that s can be registered.
func (s Spec) Validate() error {
	var errs []error
	if s.Name == "" || s.Label == "" {
		errs = append(errs, errors.New("service: name and label are required"))
	}
	winAbs := len(s.Program) > 2 && s.Program[1] == ':' && (s.Program[2] == '\\' || s.Program[2] == '/')
	if !filepath.IsAbs(s.Program) && !winAbs {
		errs = append(errs, fmt.Errorf("service: program %q is not an absolute path", s.Program))
	}
	return errors.Join(errs...)
}
