//go:build windows

package service

import (
	"context"

	"golang.org/x/sys/windows/svc"
)

// Main runs the agent (run) and returns its exit code: under the SCM
// through svc.Run and Handle, otherwise (a console) directly.
func Main(ctx context.Context, run func(context.Context) int) int {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return run(ctx)
	}
	h := &handler{ctx: ctx, run: run}
	if err := svc.Run(Name, h); err != nil {
		return 1
	}
	return h.code
}

// handler adapts Handle to svc.Handler.
type handler struct {
	ctx  context.Context
	run  func(context.Context) int
	code int
}

func (h *handler) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx) }()
	reqs := make(chan Request)
	handled := make(chan struct{})
	defer close(handled)
	go func() {
		defer close(reqs)
		for c := range r {
			req := Other
			switch c.Cmd {
			case svc.Interrogate:
				req = Interrogate
			case svc.Stop:
				req = Stop
			case svc.Shutdown:
				req = Shutdown
			}
			select {
			case reqs <- req:
			case <-handled:
				return
			}
		}
	}()
	status := func(st State) {
		switch st {
		case StartPending:
			s <- svc.Status{State: svc.StartPending}
		case Running:
			s <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
		case StopPending:
			s <- svc.Status{State: svc.StopPending}
		case Stopped:
			s <- svc.Status{State: svc.Stopped}
		}
	}
	h.code = Handle(reqs, status, cancel, done)
	if h.code != 0 {
		return true, uint32(h.code) // service-specific exit code: the SCM's recovery restarts it
	}
	return false, 0
}
