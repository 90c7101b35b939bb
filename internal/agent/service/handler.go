package service

// Request is what the service manager asks of a running service (the
// Windows SCM's svc.Cmd, restricted to what the agent answers).
type Request int

const (
	Interrogate Request = iota // report the current state again
	Stop                       // stop the service
	Shutdown                   // the machine shuts down: stop
	Other                      // anything else: ignored
)

// State is a service state as the SCM knows it.
type State int

const (
	StartPending State = iota
	Running
	StopPending
	Stopped
)

func (s State) String() string {
	return [...]string{"start-pending", "running", "stop-pending", "stopped"}[s]
}

// Handle is the service's side of the conversation with the SCM, without
// the SCM: it reports StartPending then Running, answers Interrogate
// with the current state, and on Stop or Shutdown reports StopPending and
// calls stop (which ends the agent's context). It returns the agent's
// exit code once done delivers it; the caller reports Stopped. If the
// agent ends on its own (done before any Stop), it reports StopPending
// and returns its code, so the SCM sees a failed service and restarts it
// (the recovery actions Install sets).
func Handle(requests <-chan Request, status func(State), stop func(), done <-chan int) int {
	state := StartPending
	report := func(s State) { state = s; status(s) }
	report(StartPending)
	report(Running)
	for {
		select {
		case code := <-done:
			if state != StopPending {
				report(StopPending)
			}
			return code
		case r, ok := <-requests:
			if !ok {
				requests = nil // the SCM went away: wait for the agent
				continue
			}
			switch r {
			case Interrogate:
				status(state)
			case Stop, Shutdown:
				if state != StopPending {
					report(StopPending)
					stop()
				}
			}
		}
	}
}
