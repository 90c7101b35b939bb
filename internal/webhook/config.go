package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// Formats of a delivery's body.
const (
	FormatJSON  = "json"  // api.WebhookEvent
	FormatSlack = "slack" // api.SlackMessage: {"text": "..."}
)

// Subscription is one configured receiver (the server config's
// webhooks: list).
type Subscription struct {
	// Name identifies the subscription: its delivery cursors are stored
	// under it, so renaming one starts it afresh (from the events
	// committed after the rename).
	Name string `yaml:"name"`
	// URL is where events are POSTed (http or https). It is the
	// operator's choice and trusted as such; redirects are not followed.
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature of every delivery;
	// SecretFile names a file holding it instead (surrounding
	// whitespace trimmed). Exactly one is required.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secretFile"`
	// Events filters the event types sent (api.WebhookEventTypes);
	// empty means all.
	Events []string `yaml:"events"`
	// Format is json (the default) or slack.
	Format string `yaml:"format"`
}

// Retry is the delivery policy shared by every subscription (the
// server config's webhookRetry:). Zero fields take the defaults.
type Retry struct {
	// Min and Max bound the backoff between attempts to deliver one
	// stream's next event: Min doubled after each failure, at most Max,
	// each wait drawn at random between its half and its whole (jitter).
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
	// Timeout bounds one attempt (connect, send, response headers).
	Timeout time.Duration `yaml:"timeout"`
	// Poll is how often the outbox is read when nothing wakes the
	// deliverer (a commit on this server wakes it at once).
	Poll time.Duration `yaml:"poll"`
	// Retention is how long outbox rows are kept, delivered or not.
	Retention time.Duration `yaml:"retention"`
}

// Defaults of Retry.
const (
	DefaultMin       = time.Second
	DefaultMax       = 5 * time.Minute
	DefaultTimeout   = 10 * time.Second
	DefaultPoll      = time.Second
	DefaultRetention = 30 * 24 * time.Hour
	// SecretMinLen is the shortest secret accepted.
	SecretMinLen = 16
)

// WithDefaults fills zero fields.
func (r Retry) WithDefaults() Retry {
	if r.Min == 0 {
		r.Min = DefaultMin
	}
	if r.Max == 0 {
		r.Max = DefaultMax
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.Poll == 0 {
		r.Poll = DefaultPoll
	}
	if r.Retention == 0 {
		r.Retention = DefaultRetention
	}
	return r
}

// Validate checks the policy after WithDefaults.
func (r Retry) Validate() error {
	var errs []error
	if r.Min < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("webhookRetry.min %s: must be at least 10ms", r.Min))
	}
	if r.Max < r.Min {
		errs = append(errs, fmt.Errorf("webhookRetry.max %s: must be at least webhookRetry.min (%s)", r.Max, r.Min))
	}
	if r.Timeout < 100*time.Millisecond || r.Timeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("webhookRetry.timeout %s: want 100ms..5m", r.Timeout))
	}
	if r.Poll < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("webhookRetry.poll %s: must be at least 10ms", r.Poll))
	}
	if r.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("webhookRetry.retention %s: must be at least 1h", r.Retention))
	}
	return errors.Join(errs...)
}

// Validate checks the subscriptions: names unique and non-empty, URLs
// absolute http(s) without credentials, one secret each of at least
// SecretMinLen characters (a secretFile is read), known event types and
// format. Errors name the subscription by position and name.
func Validate(subs []Subscription) error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range subs {
		where := fmt.Sprintf("webhooks[%d]", i)
		if s.Name != "" {
			where += " " + s.Name
		}
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		case len(s.Name) > 64 || strings.ContainsFunc(s.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			errs = append(errs, fmt.Errorf("%s: name must be at most 64 characters without spaces or control characters", where))
		}
		seen[s.Name] = true
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: url %q: want an absolute http:// or https:// URL", where, redact(s.URL)))
		} else if u.User != nil {
			errs = append(errs, fmt.Errorf("%s: url: no user:password@ in the URL (the signature authenticates drover to the receiver)", where))
		}
		if _, err := s.secret(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		for _, e := range s.Events {
			if !slices.Contains(api.WebhookEventTypes, e) {
				errs = append(errs, fmt.Errorf("%s: events: unknown event type %q (want one of %s)", where, e, strings.Join(api.WebhookEventTypes, ", ")))
			}
		}
		switch s.Format {
		case "", FormatJSON, FormatSlack:
		default:
			errs = append(errs, fmt.Errorf("%s: format %q: want json or slack", where, s.Format))
		}
	}
	return errors.Join(errs...)
}

// secret returns the signing secret, reading SecretFile if set.
func (s Subscription) secret() ([]byte, error) {
	switch {
	case s.Secret != "" && s.SecretFile != "":
		return nil, errors.New("secret and secretFile: set one, not both")
	case s.Secret == "" && s.SecretFile == "":
		return nil, errors.New("secret or secretFile is required (e.g. openssl rand -hex 32)")
	}
	sec := s.Secret
	if s.SecretFile != "" {
		b, err := os.ReadFile(s.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secretFile: %w", err)
		}
		sec = strings.TrimSpace(string(b))
	}
	if len(sec) < SecretMinLen {
		return nil, fmt.Errorf("secret must be at least %d characters (e.g. openssl rand -hex 32)", SecretMinLen)
	}
	return []byte(sec), nil
}

// redact shows a URL as scheme://host: its path and query may be a
// secret (a Slack incoming webhook's is).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}
