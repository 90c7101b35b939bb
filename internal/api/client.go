package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client talks to a drover server's REST API v1. The CLI uses nothing
// else to reach the server.
type Client struct {
	Base  string // e.g. http://127.0.0.1:7070
	Token string // API token, sent as a bearer token
	HTTP  *http.Client
}

// StatusError is a non-2xx answer from the server.
type StatusError struct {
	Status int
	Body   Error
}

func (e *StatusError) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", msg, e.Body.Code)
	for _, p := range e.Body.Problems {
		fmt.Fprintf(&b, "\n%s:%d:%d: ", orDefault(p.File, "plan"), p.Line, p.Col)
		if p.Path != "" {
			b.WriteString(p.Path + ": ")
		}
		b.WriteString(p.Message)
	}
	for _, m := range e.Body.Moves {
		fmt.Fprintf(&b, "\n  %s", m.Text())
	}
	return b.String()
}

// Code returns the API error code of err, or "" if err is not a
// StatusError.
func Code(err error) string {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Body.Code
	}
	return ""
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// do sends a request with a JSON body (nil for none) and decodes a JSON
// answer into out (nil to discard). ifMatch > 0 sends If-Match.
func (c *Client) do(ctx context.Context, method, path string, ifMatch int64, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if ifMatch > 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatInt(ifMatch, 10)))
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Status: resp.StatusCode}
		if json.Unmarshal(data, &se.Body) != nil || se.Body.Code == "" {
			se.Body = Error{Error: strings.TrimSpace(string(data)), Code: strconv.Itoa(resp.StatusCode)}
		}
		return se
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// ListNodes returns one page of nodes matching a CEL selector ("" for all).
func (c *Client) ListNodes(ctx context.Context, selector, after string, limit int) (NodeList, error) {
	q := url.Values{}
	if selector != "" {
		q.Set("selector", selector)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out NodeList
	err := c.do(ctx, http.MethodGet, "/v1/nodes?"+q.Encode(), 0, nil, &out)
	return out, err
}

// AllNodes pages through every node matching selector.
func (c *Client) AllNodes(ctx context.Context, selector string) ([]Node, error) {
	var all []Node
	after := ""
	for {
		page, err := c.ListNodes(ctx, selector, after, 500)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Nodes...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// GetNode returns one node.
func (c *Client) GetNode(ctx context.Context, id string) (Node, error) {
	var out Node
	err := c.do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(id), 0, nil, &out)
	return out, err
}

// SetLabels replaces a node's labels if its version is still ifVersion.
func (c *Client) SetLabels(ctx context.Context, id string, ifVersion int64, labels map[string]string) (Node, error) {
	var out Node
	err := c.do(ctx, http.MethodPut, "/v1/nodes/"+url.PathEscape(id)+"/labels", ifVersion, LabelsRequest{Labels: labels}, &out)
	return out, err
}

// ValidatePlan validates a plan against the server's schema and inventory.
func (c *Client) ValidatePlan(ctx context.Context, file, plan string) (ValidateResponse, error) {
	var out ValidateResponse
	err := c.do(ctx, http.MethodPost, "/v1/plans/validate", 0, PlanRequest{Plan: plan, File: file}, &out)
	return out, err
}

// DryRun simulates a plan against the live inventory with a random seed.
func (c *Client) DryRun(ctx context.Context, file, plan string) (DryRunResponse, error) {
	return c.Rehearse(ctx, DryRunRequest{Plan: plan, File: file})
}

// Rehearse simulates a plan against the live inventory; the server keeps
// the dry run (DryRunResponse.ID) for CreateRolloutFrom.
func (c *Client) Rehearse(ctx context.Context, req DryRunRequest) (DryRunResponse, error) {
	var out DryRunResponse
	err := c.do(ctx, http.MethodPost, "/v1/plans/dry-run", 0, req, &out)
	return out, err
}

// History returns the fleet's step history in the export format
// (sim.History as JSON).
func (c *Client) History(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/history", 0, nil, &out)
	return out, err
}

// DryRunPreflight is DryRun after asking every target node for its
// pre-flight of the change (see PlanRequest.Preflight).
func (c *Client) DryRunPreflight(ctx context.Context, file, plan string) (DryRunResponse, error) {
	var out DryRunResponse
	err := c.do(ctx, http.MethodPost, "/v1/plans/dry-run", 0, DryRunRequest{Plan: plan, File: file, Preflight: true}, &out)
	return out, err
}

// CreateRollout creates a rollout from a plan.
func (c *Client) CreateRollout(ctx context.Context, file, plan string) (Rollout, error) {
	return c.CreateRolloutFrom(ctx, CreateRolloutRequest{Plan: plan, File: file})
}

// CreateRolloutFrom creates a rollout as req says (from a dry run, with
// a seed).
func (c *Client) CreateRolloutFrom(ctx context.Context, req CreateRolloutRequest) (Rollout, error) {
	var out Rollout
	err := c.do(ctx, http.MethodPost, "/v1/rollouts", 0, req, &out)
	return out, err
}

// ListRollouts lists rollouts, newest first.
func (c *Client) ListRollouts(ctx context.Context) (RolloutList, error) {
	var out RolloutList
	err := c.do(ctx, http.MethodGet, "/v1/rollouts", 0, nil, &out)
	return out, err
}

// GetRollout returns a rollout; nodes adds its per-node states.
func (c *Client) GetRollout(ctx context.Context, id string, nodes bool) (Rollout, error) {
	var out Rollout
	path := "/v1/rollouts/" + url.PathEscape(id)
	if nodes {
		path += "?nodes=true"
	}
	err := c.do(ctx, http.MethodGet, path, 0, nil, &out)
	return out, err
}

// Preflight returns a rollout's node pre-flight (api.CodeNotFound when
// no node was asked).
func (c *Client) Preflight(ctx context.Context, id string) (PreflightView, error) {
	var out PreflightView
	err := c.do(ctx, http.MethodGet, "/v1/rollouts/"+url.PathEscape(id)+"/preflight", 0, nil, &out)
	return out, err
}

// Command sends approve, pause, resume, abort, rollback or resolve.
// ifVersion > 0 sends If-Match.
func (c *Client) Command(ctx context.Context, id, action string, ifVersion int64, req CommandRequest) (Rollout, error) {
	var out Rollout
	err := c.do(ctx, http.MethodPost, "/v1/rollouts/"+url.PathEscape(id)+"/"+action, ifVersion, req, &out)
	return out, err
}

// ListAudit returns audit entries after seq (0 for the start), oldest
// first.
func (c *Client) ListAudit(ctx context.Context, after int64, limit int, rollout string) (AuditList, error) {
	return c.QueryAudit(ctx, AuditQuery{After: after, Limit: limit, Rollout: rollout})
}

// AuditQuery selects audit entries (GET /v1/audit): those after After
// and before Before (when positive), of Rollout (when set), at most
// Limit (0: the server's default, 500); Newest returns the newest of them,
// newest first.
type AuditQuery struct {
	After, Before int64
	Limit         int
	Rollout       string
	Newest        bool
}

// QueryAudit returns the audit entries q selects.
func (c *Client) QueryAudit(ctx context.Context, aq AuditQuery) (AuditList, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatInt(aq.After, 10))
	if aq.Before > 0 {
		q.Set("before", strconv.FormatInt(aq.Before, 10))
	}
	if aq.Limit > 0 {
		q.Set("limit", strconv.Itoa(aq.Limit))
	}
	if aq.Rollout != "" {
		q.Set("rollout", aq.Rollout)
	}
	if aq.Newest {
		q.Set("order", "newest")
	}
	var out AuditList
	err := c.do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), 0, nil, &out)
	return out, err
}

// VerifyAudit asks the server to verify the audit chain.
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	var out AuditVerification
	err := c.do(ctx, http.MethodGet, "/v1/audit/verify", 0, nil, &out)
	return out, err
}

// Events follows the Server-Sent Events stream of a rollout ("" for all),
// calling fn for each event until ctx ends, fn returns false or the
// stream fails. after < 0 starts at the head of the log (new events
// only); after >= 0 replays the events after that sequence number first.
func (c *Client) Events(ctx context.Context, rollout string, after int64, fn func(Event) bool) error {
	q := url.Values{}
	if rollout != "" {
		q.Set("rollout", rollout)
	}
	if after >= 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.Base, "/")+"/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Status: resp.StatusCode}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimSpace(strings.TrimPrefix(line, "data:"))...)
		case line == "" && len(data) > 0:
			var ev Event
			if err := json.Unmarshal(data, &ev); err != nil {
				return fmt.Errorf("events: decode: %w", err)
			}
			data = data[:0]
			if !fn(ev) {
				return nil
			}
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("events: %w", err)
	}
	return ctx.Err()
}

// ListWebhooks returns the webhook subscriptions and their delivery
// status (admin).
func (c *Client) ListWebhooks(ctx context.Context) (WebhookList, error) {
	var out WebhookList
	err := c.do(ctx, http.MethodGet, "/v1/webhooks", 0, nil, &out)
	return out, err
}

// TestWebhook sends a webhook.test event to the named subscription and
// returns the receiver's verdict (admin).
func (c *Client) TestWebhook(ctx context.Context, name string) (WebhookTestResult, error) {
	var out WebhookTestResult
	err := c.do(ctx, http.MethodPost, "/v1/webhooks/"+url.PathEscape(name)+"/test", 0, nil, &out)
	return out, err
}

// Line returns the fleet-wide stop and what is in flight.
func (c *Client) Line(ctx context.Context) (LineStatus, error) {
	var out LineStatus
	err := c.do(ctx, http.MethodGet, "/v1/line", 0, nil, &out)
	return out, err
}

// StopLine stops the line fleet-wide: nothing is dispatched anywhere,
// steps not begun are cancelled.
func (c *Client) StopLine(ctx context.Context, reason string) (LineStatus, error) {
	var out LineStatus
	err := c.do(ctx, http.MethodPost, "/v1/line/stop", 0, LineRequest{Reason: reason}, &out)
	return out, err
}

// LiftLine lifts the fleet-wide stop.
func (c *Client) LiftLine(ctx context.Context, reason string) (LineStatus, error) {
	var out LineStatus
	err := c.do(ctx, http.MethodPost, "/v1/line/lift", 0, LineRequest{Reason: reason}, &out)
	return out, err
}
