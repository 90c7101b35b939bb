//go:build !unix

package driver

import "os/exec"

// ownGroup keeps the default: cancellation kills the command itself.
func ownGroup(*exec.Cmd) {}
