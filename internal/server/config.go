package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/webhook"
)

// Role is what a user may do. Each role includes the ones before it,
// except that approver and operator are siblings above viewer.
type Role string

const (
	RoleViewer   Role = "viewer"   // read everything
	RoleOperator Role = "operator" // create, pause, resume, abort, roll back, label, resolve
	RoleApprover Role = "approver" // approve rollouts of others
	RoleAdmin    Role = "admin"    // everything
)

// User is an API user: a name, a role and a bearer token.
type User struct {
	Name  string `yaml:"name"`
	Role  Role   `yaml:"role"`
	Token string `yaml:"token"`
}

// Config is the server's configuration. Precedence: DefaultConfig <
// file (LoadFile) < environment (LoadEnv) < flags (set by the caller);
// Validate runs before anything starts.
type Config struct {
	Listen     string        `yaml:"listen"`     // host:port of the API and agent channel
	DataDir    string        `yaml:"dataDir"`    // SQLite database and server state
	Database   string        `yaml:"database"`   // DSN; "" means SQLite in DataDir
	ServerID   string        `yaml:"serverId"`   // unique per server process
	Lease      time.Duration `yaml:"lease"`      // agent silent this long: its in-flight nodes become unknown
	PollWait   time.Duration `yaml:"pollWait"`   // how long an idle long poll is held
	Tick       time.Duration `yaml:"tick"`       // scheduler period when nothing wakes it
	Prometheus string        `yaml:"prometheus"` // base URL for wave gates and blocking alerts
	// AgentToken is INSECURE, for tests and migrations only: when set,
	// any holder of this shared token may act as any node (named in the
	// Drover-Node header). Production agents enrol (security.md) and
	// authenticate with client certificates; leave it empty.
	AgentToken string `yaml:"agentToken"`
	// TLS serves the API and the agent channel over TLS with a server
	// certificate of the built-in CA (created in DataDir at the first
	// start, or CACert/CAKey) and accepts agents' client certificates.
	// On by default for `drover server`; the library default is off
	// (plain HTTP: in-process tests on loopback only).
	TLS      bool     `yaml:"tls"`
	CACert   string   `yaml:"caCert"`   // the operator's own CA certificate (PEM); "" means DATADIR/ca.pem
	CAKey    string   `yaml:"caKey"`    // its private key (PEM)
	TLSHosts []string `yaml:"tlsHosts"` // extra DNS names or IPs of the server certificate
	// ClientCertTTL is the lifetime of agents' client certificates;
	// default 24h. Agents renew them at two thirds of it.
	ClientCertTTL time.Duration `yaml:"clientCertTTL"`
	Users         []User        `yaml:"users"`
	LogLevel      string        `yaml:"logLevel"`
	// Failpoints arms crash points for crash-recovery tests (see
	// failpoint.go), from DROVER_FAILPOINTS only; "" in production.
	Failpoints string `yaml:"-"`
	// ArtifactsDir is a TUF repository (drover artifact init) published
	// read-only at /v1/artifacts/ (see artifacts.go); "" publishes none.
	ArtifactsDir string `yaml:"artifactsDir"`
	// AuditKey is the note signer key file that signs the audit log's
	// checkpoints; "" means DATADIR/audit.key, generated at first start.
	// Servers sharing a database must share it (see auditlog.go).
	AuditKey string `yaml:"auditKey"`
	// PlainHTTP2 serves prior-knowledge HTTP/2 (h2c) besides HTTP/1.1
	// on a server without TLS, so that many clients' requests share a
	// connection; set by drover bench agents --http2 only (with TLS the
	// server speaks HTTP/2 anyway).
	PlainHTTP2 bool `yaml:"-"`
	// InsecurePlainHTTP lets a server without TLS listen on an address
	// that is not loopback (tokens then cross the network in clear).
	// Without it such a configuration is refused.
	InsecurePlainHTTP bool `yaml:"insecurePlainHTTP"`
	// TrustedProxies are the addresses (CIDRs or IPs) of reverse proxies
	// whose X-Forwarded-For names the client; from any other peer the
	// header is ignored (see authlimit.go).
	TrustedProxies []string `yaml:"trustedProxies"`
	// ApprovalFloor sets minimum approvals the server requires whatever
	// the plan asks (see floor.go).
	ApprovalFloor []FloorRule `yaml:"approvalFloor"`
	// Metrics says who may read /metrics and where it is served.
	Metrics MetricsConfig `yaml:"metrics"`
	// SessionTTL is the lifetime of a dashboard session; default 12h.
	SessionTTL time.Duration `yaml:"sessionTTL"`
	// FleetLock serves the FleetLock protocol to Zincati and Flatcar
	// nodes on its own listener (see fleetlock.go); off without a listen.
	FleetLock FleetLockConfig `yaml:"fleetlock"`
	// Webhooks are the subscriptions to webhook events, WebhookRetry
	// their delivery policy (see internal/webhook and docs/webhooks.md).
	Webhooks     []webhook.Subscription `yaml:"webhooks"`
	WebhookRetry webhook.Retry          `yaml:"webhookRetry"`
	// Evidence is the retention of evidence bundles (see evidence.go).
	Evidence EvidenceConfig `yaml:"evidence"`

	// AgentLimits bound what one node may send (see agentlimits.go);
	// StreamLimits bound the event streams (see events.go). Their keys
	// sit at the top level of the file.
	AgentLimits  `yaml:",inline"`
	StreamLimits `yaml:",inline"`
}

// AgentLimits bound the input of one node, so that a compromised node
// cannot grow the audit log or the server's memory without bound, nor
// slow the other nodes down.
type AgentLimits struct {
	// MaxFactsBytes is the largest facts object (JSON-encoded) a node may
	// register or poll with; larger ones are refused (413 too_large).
	MaxFactsBytes int `yaml:"agentMaxFactsBytes"`
	// MaxReasonBytes bounds a report's reason: a longer one is cut, with
	// a marker saying how much was cut, never refused.
	MaxReasonBytes int `yaml:"agentMaxReasonBytes"`
	// MaxEvidenceBytes bounds a report's evidence (JSON-encoded): the
	// entries that do not fit are replaced by a marker with their size
	// and the digest of the whole, never refused.
	MaxEvidenceBytes int `yaml:"agentMaxEvidenceBytes"`
	// FactsPerMinute and FactsBurst are a token bucket per node for
	// registrations and polls carrying facts; ReportsPerMinute and
	// ReportsBurst one for step reports. Beyond them: 429 rate_limited
	// with Retry-After.
	FactsPerMinute   float64 `yaml:"agentFactsPerMinute"`
	FactsBurst       int     `yaml:"agentFactsBurst"`
	ReportsPerMinute float64 `yaml:"agentReportsPerMinute"`
	ReportsBurst     int     `yaml:"agentReportsBurst"`
	// ClockWindow and ClockSkew bound the times an agent claims (a
	// report's at and healthySince): earlier than ClockWindow before the
	// server's clock, or later than ClockSkew after it, they are clamped
	// to that bound. Audit entries carry the server's receive time.
	ClockWindow time.Duration `yaml:"agentClockWindow"`
	ClockSkew   time.Duration `yaml:"agentClockSkew"`
}

// StreamLimits bound the event streams (GET /v1/events).
type StreamLimits struct {
	// PerIdentity is how many streams one user (or API token's user) may
	// hold open at once; Total how many the server holds. Beyond them:
	// 429 rate_limited.
	PerIdentity int `yaml:"eventStreamsPerIdentity"`
	Total       int `yaml:"eventStreamsTotal"`
	// WriteTimeout is how long one write to a stream may block: a client
	// that does not read is dropped after it.
	WriteTimeout time.Duration `yaml:"eventStreamWriteTimeout"`
}

// MetricsConfig: /metrics is served on the API listener and needs an API
// token (any role) unless Auth is "none"; with Listen set it is served
// there instead, on its own plain-HTTP listener, and not on the API's.
type MetricsConfig struct {
	Auth   string `yaml:"auth"`   // "token" (default) or "none"
	Listen string `yaml:"listen"` // host:port of a separate metrics listener; "" serves them on the API listener
}

// Metrics authentication modes.
const (
	MetricsAuthToken = "token"
	MetricsAuthNone  = "none"
)

// MinTokenLen is the shortest token the configuration accepts (22
// base64url characters carry 128 random bits).
const MinTokenLen = 22

// DefaultSessionTTL is a dashboard session's lifetime when none is set.
const DefaultSessionTTL = 12 * time.Hour

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Listen:   "127.0.0.1:7070",
		DataDir:  "drover-data",
		ServerID: fmt.Sprintf("%s-%d", orElse(host, "server"), os.Getpid()),
		Lease:    30 * time.Second,
		PollWait: 20 * time.Second,
		Tick:     time.Second,
		LogLevel: "info",
		AgentLimits: AgentLimits{
			MaxFactsBytes: 256 << 10, MaxReasonBytes: 1 << 10, MaxEvidenceBytes: 64 << 10,
			FactsPerMinute: 6, FactsBurst: 10, ReportsPerMinute: 120, ReportsBurst: 60,
			ClockWindow: time.Hour, ClockSkew: time.Minute,
		},
		StreamLimits: StreamLimits{PerIdentity: 8, Total: 256, WriteTimeout: 10 * time.Second},
	}
}

// LoadFile merges a YAML configuration file over c. Unknown keys are
// errors, with their line.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// LoadEnv merges DROVER_* environment variables over c.
func (c *Config) LoadEnv(getenv func(string) string) error {
	str := map[string]*string{
		"DROVER_LISTEN": &c.Listen, "DROVER_DATA_DIR": &c.DataDir, "DROVER_DATABASE": &c.Database,
		"DROVER_SERVER_ID": &c.ServerID, "DROVER_PROMETHEUS": &c.Prometheus,
		"DROVER_AGENT_TOKEN": &c.AgentToken, "DROVER_LOG_LEVEL": &c.LogLevel, "DROVER_FAILPOINTS": &c.Failpoints,
		"DROVER_AUDIT_KEY": &c.AuditKey, "DROVER_METRICS_AUTH": &c.Metrics.Auth, "DROVER_METRICS_LISTEN": &c.Metrics.Listen,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("DROVER_TRUSTED_PROXIES"); v != "" {
		c.TrustedProxies = strings.Split(v, ",")
	}
	if v := getenv("DROVER_INSECURE_PLAIN_HTTP"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("DROVER_INSECURE_PLAIN_HTTP=%q: want true or false", v)
		}
		c.InsecurePlainHTTP = b
	}
	dur := map[string]*time.Duration{"DROVER_LEASE": &c.Lease, "DROVER_POLL_WAIT": &c.PollWait, "DROVER_TICK": &c.Tick,
		"DROVER_SESSION_TTL": &c.SessionTTL}
	for k, p := range dur {
		if v := getenv(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q: %w", k, v, err)
			}
			*p = d
		}
	}
	return nil
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want host:port: %w", c.Listen, err))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("listen %q: bad port", c.Listen))
	}
	if c.Database == "" && c.DataDir == "" {
		errs = append(errs, errors.New("dataDir or database is required"))
	}
	if c.Lease < time.Second {
		errs = append(errs, fmt.Errorf("lease %s: must be at least 1s", c.Lease))
	}
	if c.PollWait <= 0 || c.PollWait >= c.Lease {
		errs = append(errs, fmt.Errorf("pollWait %s: must be positive and shorter than the lease (%s)", c.PollWait, c.Lease))
	}
	if c.Tick < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("tick %s: must be at least 10ms", c.Tick))
	}
	if c.ServerID == "" {
		errs = append(errs, errors.New("serverId is required"))
	}
	if c.AgentToken != "" {
		if err := weakToken(c.AgentToken); err != nil {
			errs = append(errs, fmt.Errorf("agentToken (insecure, for tests): %w", err))
		}
	}
	if !c.TLS && !c.InsecurePlainHTTP && !loopbackListen(c.Listen) {
		errs = append(errs, fmt.Errorf("listen %q without TLS: plain HTTP would send tokens in clear over the network; listen on loopback, turn TLS on, or set insecurePlainHTTP: true (--insecure-plain-http)", c.Listen))
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if _, err := compileFloor(c.ApprovalFloor); err != nil {
		errs = append(errs, err)
	}
	switch c.Metrics.Auth {
	case "", MetricsAuthToken, MetricsAuthNone:
	default:
		errs = append(errs, fmt.Errorf("metrics.auth %q: want token or none", c.Metrics.Auth))
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			errs = append(errs, fmt.Errorf("metrics.listen %q: want host:port: %w", c.Metrics.Listen, err))
		}
	}
	errs = append(errs, c.FleetLock.validate()...)
	if err := c.Evidence.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SessionTTL < 0 || (c.SessionTTL > 0 && c.SessionTTL < time.Minute) {
		errs = append(errs, fmt.Errorf("sessionTTL %s: must be at least 1m", c.SessionTTL))
	}
	if (c.CACert == "") != (c.CAKey == "") {
		errs = append(errs, errors.New("caCert and caKey go together"))
	}
	if c.ClientCertTTL != 0 && c.ClientCertTTL < time.Minute {
		errs = append(errs, fmt.Errorf("clientCertTTL %s: must be at least 1m", c.ClientCertTTL))
	}
	if len(c.Users) == 0 {
		errs = append(errs, errors.New("users: at least one user is required"))
	}
	seen := map[string]bool{}
	tokens := map[string]string{} // token -> first user holding it
	if c.AgentToken != "" {
		tokens[c.AgentToken] = "agentToken"
	}
	for i, u := range c.Users {
		switch {
		case u.Name == "":
			errs = append(errs, fmt.Errorf("users[%d]: name is required", i))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("users[%d]: duplicate name %q", i, u.Name))
		case !validUserName(u.Name):
			errs = append(errs, fmt.Errorf("users[%d]: name %q is reserved (agent:..., scheduler) or has spaces or control characters", i, u.Name))
		}
		seen[u.Name] = true
		switch u.Role {
		case RoleViewer, RoleOperator, RoleApprover, RoleAdmin:
		default:
			errs = append(errs, fmt.Errorf("users[%d] %s: role %q is not one of viewer, operator, approver, admin", i, u.Name, u.Role))
		}
		if err := weakToken(u.Token); err != nil {
			errs = append(errs, fmt.Errorf("users[%d] %s: %w", i, u.Name, err))
		} else if other, dup := tokens[u.Token]; dup {
			errs = append(errs, fmt.Errorf("users[%d] %s: token is also %s's: every user needs a token of its own", i, u.Name, other))
		} else {
			tokens[u.Token] = u.Name
		}
	}
	if err := webhook.Validate(c.Webhooks); err != nil {
		errs = append(errs, err)
	}
	if err := c.WebhookRetry.WithDefaults().Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.AgentLimits.validate()...)
	errs = append(errs, c.StreamLimits.validate()...)
	if _, err := parseFailpoints(c.Failpoints); err != nil {
		errs = append(errs, fmt.Errorf("DROVER_FAILPOINTS: %w", err))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("logLevel %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// weakToken refuses configured tokens a guesser could find: shorter
// than MinTokenLen, or made of few distinct characters.
func weakToken(tok string) error {
	if len(tok) < MinTokenLen {
		return fmt.Errorf("token must be at least %d characters (e.g. openssl rand -base64 24)", MinTokenLen)
	}
	distinct := map[rune]bool{}
	for _, r := range tok {
		distinct[r] = true
	}
	if len(distinct) < 8 {
		return fmt.Errorf("token has only %d distinct characters: use a random one (e.g. openssl rand -base64 24)", len(distinct))
	}
	return nil
}

// validUserName refuses names that are reserved for agents and the
// scheduler, and names with spaces or control characters.
func validUserName(name string) bool {
	if strings.HasPrefix(name, "agent:") || name == "scheduler" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// loopbackListen reports whether a listen address is loopback only.
func loopbackListen(listen string) bool {
	h, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (l AgentLimits) validate() []error {
	var errs []error
	if l.MaxFactsBytes < 4<<10 || l.MaxFactsBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("agentMaxFactsBytes %d: want 4096..16777216", l.MaxFactsBytes))
	}
	if l.MaxReasonBytes < 64 || l.MaxReasonBytes > 64<<10 {
		errs = append(errs, fmt.Errorf("agentMaxReasonBytes %d: want 64..65536", l.MaxReasonBytes))
	}
	if l.MaxEvidenceBytes < 1<<10 || l.MaxEvidenceBytes > api.MaxBodyBytes/2 {
		errs = append(errs, fmt.Errorf("agentMaxEvidenceBytes %d: want 1024..%d", l.MaxEvidenceBytes, api.MaxBodyBytes/2))
	}
	for _, r := range []struct {
		key   string
		rate  float64
		burst int
	}{{"agentFacts", l.FactsPerMinute, l.FactsBurst}, {"agentReports", l.ReportsPerMinute, l.ReportsBurst}} {
		if r.rate <= 0 {
			errs = append(errs, fmt.Errorf("%sPerMinute %g: must be positive", r.key, r.rate))
		}
		if r.burst < 1 {
			errs = append(errs, fmt.Errorf("%sBurst %d: must be at least 1", r.key, r.burst))
		}
	}
	if l.ClockWindow < time.Minute {
		errs = append(errs, fmt.Errorf("agentClockWindow %s: must be at least 1m", l.ClockWindow))
	}
	if l.ClockSkew < 0 || l.ClockSkew > time.Hour {
		errs = append(errs, fmt.Errorf("agentClockSkew %s: want 0..1h", l.ClockSkew))
	}
	return errs
}

func (l StreamLimits) validate() []error {
	var errs []error
	if l.PerIdentity < 1 {
		errs = append(errs, fmt.Errorf("eventStreamsPerIdentity %d: must be at least 1", l.PerIdentity))
	}
	if l.Total < l.PerIdentity {
		errs = append(errs, fmt.Errorf("eventStreamsTotal %d: must be at least eventStreamsPerIdentity (%d)", l.Total, l.PerIdentity))
	}
	if l.WriteTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("eventStreamWriteTimeout %s: must be at least 100ms", l.WriteTimeout))
	}
	return errs
}

// DSN returns the database to open.
func (c *Config) DSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "drover.db")
}

func orElse(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
