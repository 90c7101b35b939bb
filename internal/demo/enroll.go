package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
)

// tlsClient trusts only caPEM; nil (the default client) without TLS.
func tlsClient(caPEM []byte) *http.Client {
	if caPEM == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}}
}

// enrolAgent enrols a demo agent as an operator would: an admin creates
// a single-use token, the agent generates its key, pins the CA by its
// hash and gets its client certificate.
func enrolAgent(ctx context.Context, admin *api.Client, caHash string, cfg *agent.Config) (*agent.Identity, error) {
	tok, err := admin.CreateToken(ctx, api.TokenRequest{Kind: api.TokenEnroll, TTL: "10m"})
	if err != nil {
		return nil, fmt.Errorf("enrolment token for %s: %w", cfg.NodeID, err)
	}
	id, err := agent.LoadOrEnroll(ctx, agent.IdentityOptions{ServerURL: cfg.ServerURL, StateDir: cfg.StateDir, NodeID: cfg.NodeID,
		EnrollToken: tok.Token, CAHash: caHash, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	cfg.HTTPClient, cfg.Token = id.HTTPClient(), ""
	return id, nil
}
