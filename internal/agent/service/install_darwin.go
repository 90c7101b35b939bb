//go:build darwin

package service

import (
	"context"
	"fmt"
	"os"
	"os/exec"
)

// Install writes the launchd daemon of s and loads it (launchctl
// bootstrap system), which starts the agent.
func Install(ctx context.Context, s Spec) error {
	plist, err := LaunchdPlist(s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(LaunchdPlistPath, plist, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", LaunchdPlistPath, err)
	}
	if out, err := exec.CommandContext(ctx, "launchctl", "bootstrap", "system", LaunchdPlistPath).CombinedOutput(); err != nil {
		return fmt.Errorf("launchctl bootstrap system %s: %w: %s", LaunchdPlistPath, err, out)
	}
	return nil
}

// Uninstall stops and unloads the daemon and removes its plist; the
// agent's state and config are kept.
func Uninstall(ctx context.Context, s Spec) error {
	if out, err := exec.CommandContext(ctx, "launchctl", "bootout", "system/"+s.Label).CombinedOutput(); err != nil {
		return fmt.Errorf("launchctl bootout system/%s: %w: %s", s.Label, err, out)
	}
	if err := os.Remove(LaunchdPlistPath); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
