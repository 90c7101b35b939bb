//go:build !darwin && !windows

package service

import (
	"context"
	"errors"
)

// errUseUnit: Linux's agent is registered by its package.
var errUseUnit = errors.New("service install: on Linux install the drover-agent .deb or .rpm package, which ships the systemd unit drover-agent.service")

// Install is macOS's and Windows' only.
func Install(context.Context, Spec) error { return errUseUnit }

// Uninstall is macOS's and Windows' only.
func Uninstall(context.Context, Spec) error { return errUseUnit }
