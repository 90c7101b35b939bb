package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// CodeProtocolUnsupported is the error code a server answers when it does
// not serve the agent's protocol version (also signalled by status 426).
const CodeProtocolUnsupported = "protocol_unsupported"

// ServerError is an answer of the server that is not a success: a status
// and, when the body was the API's JSON error, its message and code.
type ServerError struct {
	Path    string
	Status  int
	Code    string
	Message string
}

func (e *ServerError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("%s: server answered %d: %s", e.Path, e.Status, msg)
	if e.Code != "" {
		s += " (code " + e.Code + ")"
	}
	return s
}

// permanent reports whether retrying the same request cannot help: a 4xx
// other than 408 and 429.
func (e *ServerError) permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// client speaks the agent protocol.
type client struct {
	node   string // sent as Drover-Node: the identity the agent token vouches for until enrolment gives each agent a certificate
	base   string
	http   *http.Client
	token  string
	log    *slog.Logger
	clock  Clock
	jitter func() float64 // [0,1)
	cap    time.Duration
}

// do POSTs in as JSON to path and decodes the answer into out (if not
// nil). Errors: ErrProtocolUnsupported (wrapped) on 426 or the code
// protocol_unsupported; *ServerError on other non-2xx answers; anything
// else is a network error.
func (c *client) do(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Drover-Node", c.node)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &ServerError{Path: path, Status: resp.StatusCode}
		var eb struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(b, &eb) == nil {
			se.Message, se.Code = eb.Error, eb.Code
		} else if len(b) > 0 {
			se.Message = string(bytes.TrimSpace(b[:min(len(b), 200)]))
		}
		if resp.StatusCode == http.StatusUpgradeRequired || se.Code == CodeProtocolUnsupported {
			return fmt.Errorf("%w: agent speaks version %d, server says %s (server version header %q)",
				ErrProtocolUnsupported, api.ProtocolVersion, se.Error(), resp.Header.Get(api.HeaderProtocol))
		}
		return se
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", path, err)
		}
	}
	return nil
}

// backoff returns the delay before retry n (0-based): exponential from 1s,
// capped, with jitter in [d/2, d).
func (c *client) backoff(n int) time.Duration {
	d := time.Second
	for i := 0; i < n && d < c.cap; i++ {
		d *= 2
	}
	d = min(d, c.cap)
	return d/2 + time.Duration(c.jitter()*float64(d/2))
}

// sleep waits d or until ctx ends.
func (c *client) sleep(ctx context.Context, d time.Duration) error {
	t := c.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry calls fn until it succeeds, ctx ends, the protocol is refused, or
// (when stopOnPermanent) the server refuses the request with a permanent
// 4xx; it backs off between tries and logs each failure. maxTries <= 0
// means no limit. It returns the last error.
func (c *client) retry(ctx context.Context, what string, maxTries int, stopOnPermanent bool, fn func(ctx context.Context) error) error {
	for n := 0; ; n++ {
		err := fn(ctx)
		if err == nil {
			if n > 0 {
				c.log.Info("server reachable again", "what", what, "tries", n+1)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrProtocolUnsupported) {
			return err
		}
		var se *ServerError
		if errors.As(err, &se) && se.permanent() {
			c.log.Error("server refused request", "what", what, "status", se.Status, "code", se.Code, "error", se.Message)
			if stopOnPermanent {
				return err
			}
		} else {
			c.log.Warn("server request failed, retrying", "what", what, "try", n+1, "error", err)
		}
		if maxTries > 0 && n+1 >= maxTries {
			return err
		}
		d := c.backoff(n)
		if errors.As(err, &se) && se.permanent() {
			d = c.backoff(64) // a refusal will not fix itself soon
		}
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
}
