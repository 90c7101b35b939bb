package driver

import (
	"context"
	"fmt"

	"github.com/drover-dev/drover/internal/plan"
)

// Command is one command a driver or probe runs: Name with Args, each
// value one argv element (never through a shell), and Env added to its
// environment. Commands carrying values from a plan are built by
// functions that check the values against their plan.Ident first and
// return the check's *plan.IdentError otherwise.
type Command struct {
	Name string
	Args []string
	Env  []string
}

// Run runs c with r.
func (c Command) Run(ctx context.Context, r Runner) (stdout, stderr []byte, err error) {
	return r.Run(ctx, c.Env, c.Name, c.Args...)
}

// String renders c as in errors and transcripts (see commandLine).
func (c Command) String() string { return commandLine(c.Name, c.Args...) }

// SystemctlCommand is systemctl VERB... UNIT, e.g. ("nginx", "restart")
// or ("nginx", "show", "--property=LoadState", "--value"). verb is fixed
// by the caller; unit must be a plan.SystemdUnit, and is the last
// argument, whole.
func SystemctlCommand(unit string, verb ...string) (Command, error) {
	if err := plan.SystemdUnit.Check(unit); err != nil {
		return Command{}, err
	}
	return Command{Name: "systemctl", Args: append(append([]string(nil), verb...), unit)}, nil
}

// powerShell runs a fixed script whose values come from environment
// variables ("NAME=value"), never from its text.
//
// Values cannot be passed as arguments either: powershell.exe reads every
// argument after -Command as more script text, joined with spaces
// (about_PowerShell_exe: "all arguments following it are interpreted as
// part of the command"), so an argument is interpolation again; -File
// would need a script file on disk. An environment variable reaches
// PowerShell through CreateProcess's environment block, which nothing
// parses, and the script reads it with $env:NAME as a string that
// PowerShell never evaluates. The script is a constant: the same text
// whatever the values.
func powerShell(script string, env ...string) Command {
	return Command{
		Name: "powershell.exe",
		Args: []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", script},
		Env:  env,
	}
}

// ServiceOp is what the service driver, a probe or WindowsServiceCommand
// does with a service.
type ServiceOp string

// The operations on a service.
const (
	// ServiceExists fails when there is no such service (systemctl
	// prints LoadState not-found).
	ServiceExists ServiceOp = "exists"
	// ServiceStatus prints the service's status: Running, Stopped,
	// StartPending... (systemctl: active, failed...).
	ServiceStatus ServiceOp = "status"
	// ServiceRestart restarts the service.
	ServiceRestart ServiceOp = "restart"
)

// windowsServiceEnv is the environment variable holding the service name.
const windowsServiceEnv = "DROVER_SERVICE"

// The scripts read the name from DROVER_SERVICE. Get-Service and
// Restart-Service read wildcards in -Name, which plan.WindowsService
// does not allow: the name matches one service or none.
const psServicePrologue = `$ErrorActionPreference = 'Stop'
$name = $env:DROVER_SERVICE
if (-not $name) { throw 'DROVER_SERVICE is not set' }
`

const (
	psServiceExists  = "# drover service-exists\n" + psServicePrologue + "Get-Service -Name $name | Out-Null"
	psServiceStatus  = "# drover service-status\n" + psServicePrologue + "(Get-Service -Name $name).Status.ToString()"
	psServiceRestart = "# drover service-restart\n" + psServicePrologue + "Restart-Service -Name $name"
)

// WindowsServiceCommand is the PowerShell command doing op with the
// service name, a plan.WindowsService passed in DROVER_SERVICE.
func WindowsServiceCommand(op ServiceOp, name string) (Command, error) {
	var script string
	switch op {
	case ServiceExists:
		script = psServiceExists
	case ServiceStatus:
		script = psServiceStatus
	case ServiceRestart:
		script = psServiceRestart
	default:
		return Command{}, fmt.Errorf("unknown Windows service operation %q", op)
	}
	if err := plan.WindowsService.Check(name); err != nil {
		return Command{}, err
	}
	return powerShell(script, windowsServiceEnv+"="+name), nil
}
