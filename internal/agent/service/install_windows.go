//go:build windows

package service

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Install creates the agent's service (automatic start, restarted 10 s
// after a failure) and starts it.
func Install(_ context.Context, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	srv, err := m.CreateService(s.Name, s.Program, mgr.Config{
		DisplayName: s.DisplayName, Description: s.Description, StartType: mgr.StartAutomatic,
	}, s.Args...)
	if err != nil {
		return fmt.Errorf("create service %s: %w", s.Name, err)
	}
	defer srv.Close()
	restart := mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: 10 * time.Second}
	if err := srv.SetRecoveryActions([]mgr.RecoveryAction{restart, restart, restart}, 86400); err != nil {
		return fmt.Errorf("service %s recovery actions: %w", s.Name, err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start service %s: %w", s.Name, err)
	}
	return nil
}

// Uninstall stops the service and deletes it; the agent's state and
// config are kept.
func Uninstall(_ context.Context, s Spec) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	srv, err := m.OpenService(s.Name)
	if err != nil {
		return fmt.Errorf("open service %s: %w", s.Name, err)
	}
	defer srv.Close()
	if st, err := srv.Query(); err == nil && st.State != svc.Stopped {
		_, _ = srv.Control(svc.Stop)
		for i := 0; i < 30; i++ {
			if st, err := srv.Query(); err != nil || st.State == svc.Stopped {
				break
			}
			time.Sleep(time.Second)
		}
	}
	if err := srv.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", s.Name, err)
	}
	return nil
}
