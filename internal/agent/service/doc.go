// Package service runs the agent under the service manager of macOS and
// Windows, and registers it there (`drover-agent service
// install|uninstall`). Linux needs none of it: the .deb and .rpm packages
// ship a systemd unit (deploy/systemd).
//
//   - macOS: a launchd daemon, /Library/LaunchDaemons/dev.drover.agent.plist
//     (LaunchdPlist writes it; deploy/launchd holds the default one),
//     loaded with `launchctl bootstrap system`. launchd sends SIGTERM to
//     stop it, which the agent's main already handles.
//   - Windows: a service of the service control manager (SCM), created
//     with golang.org/x/sys/windows/svc/mgr, started automatically and
//     restarted on failure. Run talks to the SCM through svc.Run; the
//     state machine behind it (Handle) is platform-neutral, so its
//     transitions are tested on Linux with a fake request channel.
//
// Both start the agent as `PROGRAM --config CONFIG` (ConfigPath: the same
// YAML file as Linux's /etc/drover/agent.yaml).
package service
