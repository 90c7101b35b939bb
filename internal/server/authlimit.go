package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// Failed authentications (security.md) are counted per presented
// credential and per client address, in fixed windows. They never stand
// in the way of valid credentials: an agent with a valid client
// certificate, a user with a valid token or session, or an enrolment
// with a valid token is served whatever failed from its address before
// (behind NAT or a proxy that address is the whole fleet). Credentials
// are checked first; only a failure is answered 429 once its credential
// or its address is over the limit, and a credential over its limit is
// refused without asking the store again.
//
// What limits online guessing is therefore the token space: API,
// enrolment and session tokens are 256 random bits, and configured
// tokens must be at least MinTokenLen characters of some variety. The
// limiter bounds the work and the noise of a flood: a known-bad
// credential is not looked up again, and bearer tokens of the API
// token's shape are the only ones the store is asked about.

// authLimit is the number of failures a credential or an address may
// have in a window before its failures are answered 429.
const (
	authLimit       = 10
	authLimitWindow = time.Minute
	// authLimitKeys bounds the limiter's memory: past it, stale entries
	// are dropped, and new credentials are not tracked (addresses still
	// are) until some expire.
	authLimitKeys = 100_000
)

// limiter counts failures per key ("addr 192.0.2.7", "cred HASH").
type limiter struct {
	max    int
	window time.Duration

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	start time.Time
	n     int
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, keys: map[string]*failures{}}
}

// over returns how long key stays over its limit (0: it is not).
func (l *limiter) over(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overLocked(key, now)
}

func (l *limiter) overLocked(key string, now time.Time) time.Duration {
	f, ok := l.keys[key]
	if !ok {
		return 0
	}
	if now.Sub(f.start) >= l.window || now.Before(f.start) {
		delete(l.keys, key)
		return 0
	}
	if f.n <= l.max {
		return 0
	}
	return f.start.Add(l.window).Sub(now)
}

// fail counts one failure against each key ("" keys are skipped) and
// returns the longest time any of them is now over its limit, and the
// keys that went over it with this failure.
func (l *limiter) fail(now time.Time, keys ...string) (wait time.Duration, crossed []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		f, ok := l.keys[k]
		if !ok || now.Sub(f.start) >= l.window || now.Before(f.start) {
			if len(l.keys) >= authLimitKeys {
				l.sweep(now)
				if len(l.keys) >= authLimitKeys && strings.HasPrefix(k, "cred ") {
					continue
				}
			}
			f = &failures{start: now}
			l.keys[k] = f
		}
		f.n++
		if f.n == l.max+1 {
			crossed = append(crossed, k)
		}
		wait = max(wait, l.overLocked(k, now))
	}
	return wait, crossed
}

// sweep drops the entries whose window ended.
func (l *limiter) sweep(now time.Time) {
	for k, f := range l.keys {
		if now.Sub(f.start) >= l.window {
			delete(l.keys, k)
		}
	}
}

// rateLimited is the 429 answer for a failure over its limit.
func rateLimited(w http.ResponseWriter, what string, wait time.Duration) error {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &httpError{status: http.StatusTooManyRequests, code: api.CodeRateLimited,
		msg: fmt.Sprintf("too many failed authentications %s; retry in %ds", what, secs)}
}

// credKey names a presented secret in the limiter by a hash of it.
func credKey(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return "cred " + hex.EncodeToString(sum[:16])
}

func addrKey(ip string) string { return "addr " + ip }

// bearer is the request's bearer token, "" when none.
func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

// authenticateLimited authenticates r. Valid credentials always pass
// (see above); a failure counts against its credential and the client's
// address and is answered 429 with Retry-After once either is over the
// limit. A credential already over its limit is refused at once.
func (s *Server) authenticateLimited(w http.ResponseWriter, r *http.Request) (identity, error) {
	now := s.now()
	var cred string
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		cred = credKey(bearer(r))
		if wait := s.sec.limit.over(cred, now); cred != "" && wait > 0 {
			return identity{}, rateLimited(w, "with this token", wait)
		}
	}
	id, err := s.authenticate(r)
	var he *httpError
	if err == nil || !errors.As(err, &he) || he.status != http.StatusUnauthorized {
		return id, err
	}
	ip := s.clientIP(r)
	if wait := s.failedAuth(r, now, ip, cred); wait > 0 {
		return identity{}, rateLimited(w, "from "+ip, wait)
	}
	return id, err
}

// failedAuth counts a failure of the credential cred from ip, logging
// when either goes over its limit, and returns how long it stays over.
func (s *Server) failedAuth(r *http.Request, now time.Time, ip, cred string) time.Duration {
	wait, crossed := s.sec.limit.fail(now, addrKey(ip), cred)
	for _, k := range crossed {
		if k == cred {
			s.log.Warn("one credential failed authentication too often; refused without lookup until the window ends",
				"credential", strings.TrimPrefix(k, "cred ")[:8], "remote", ip, "path", r.URL.Path, "window", authLimitWindow)
		} else {
			s.log.Warn("too many failed authentications from one address; its failures get 429 (valid credentials still pass)",
				"remote", ip, "path", r.URL.Path, "window", authLimitWindow)
		}
	}
	return wait
}

// parseTrustedProxies reads Config.TrustedProxies: CIDRs or single IPs.
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
	return parseNetworks("trustedProxies", list)
}

// trustedProxy reports whether ip is one of Config.TrustedProxies.
func (s *Server) trustedProxy(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range s.sec.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the client's address: the connection's peer, or, when the
// peer is a trusted proxy, the last address in X-Forwarded-For that is
// not a trusted proxy (each proxy appends the address it saw; anything
// left of a trusted proxy's entry is the client's to forge).
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(s.sec.proxies) == 0 || !s.trustedProxy(peer) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // a malformed hop: trust nothing left of it
		}
		client = a.Unmap()
		if !s.trustedProxy(client) {
			break
		}
	}
	return client.String()
}
