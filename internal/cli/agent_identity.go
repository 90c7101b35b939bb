package cli

import (
	"context"

	"github.com/drover-dev/drover/internal/agent"
)

// agentIdentity loads the agent's client certificate from its state
// directory, enrolling first when there is none, and makes cfg talk to
// the server with it.
func agentIdentity(ctx context.Context, e *env, cfg *agent.Config, enrollToken, caHash string) (*agent.Identity, error) {
	id, err := agent.LoadOrEnroll(ctx, agent.IdentityOptions{ServerURL: cfg.ServerURL, StateDir: cfg.StateDir, NodeID: cfg.NodeID,
		EnrollToken: enrollToken, CAHash: caHash, Logger: e.log.With("component", "identity")})
	if err != nil {
		return nil, exitf(ExitError, "agent: %w", err)
	}
	cfg.HTTPClient, cfg.Token = id.HTTPClient(), ""
	return id, nil
}
