// Package web owns drover's dashboard: server-rendered HTML pages (fleet,
// rollouts, a live rollout detail, coverage and exposure, fleet safety,
// audit) embedded
// in the binary, with a little plain JavaScript for the live parts.
//
// Design: the dashboard is a client of the REST API v1 that runs inside
// the server process. It holds no store, no roles and no state of its
// own: every page calls the API handler in-process with the signed-in
// user's token as a bearer token, decodes the same JSON the CLI reads and
// renders it with html/template. The API therefore enforces roles for the
// dashboard exactly as for every other client; the pages only hide the
// buttons that GET /v1/whoami says the caller's role cannot use.
//
// Sign-in: POST /ui/login trades the user's token for a dashboard
// session (POST /v1/sessions): a random session token the store keeps
// hashed, with a lifetime, refused once the user's token is revoked and
// revoked at sign-out (DELETE /v1/sessions/current). Only the session
// token goes into the cookie, never the API token; the cookie is
// HttpOnly, SameSite=Strict (Secure over TLS): scripts never see it and
// browsers do not send it on cross-site requests. Sessions live in the
// store, so any server of an HA group serves any page. Every POST also
// passes net/http's CrossOriginProtection (Sec-Fetch-Site / Origin
// checks), so forms need no CSRF token.
//
// Notices are never text from the URL: a command's outcome comes back as
// ?done=ACTION, shown as a fixed sentence, and its failure is rendered
// at once rather than carried in a redirect.
//
// Live updates: the rollout page opens an EventSource on
// /ui/rollouts/{id}/events, which relays the API's SSE stream of the
// rollout's audit entries; on each event the page re-fetches itself and
// swaps its live region, so one template renders both the first paint and
// every update.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

//go:embed templates/*.html static/*
var assets embed.FS

// cookieName holds the signed-in user's session token.
const cookieName = "drover_session"

// Options configure the dashboard.
type Options struct {
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil: time.Now; ages and "last seen" are relative to it
}

// dashboard serves the pages. api is the server's REST API handler; the
// dashboard calls it in-process and never serves /v1/ itself.
type dashboard struct {
	api  http.Handler
	log  *slog.Logger
	now  func() time.Time
	tmpl map[string]*template.Template
	mux  *http.ServeMux
}

// Handler returns the dashboard, to be mounted at "/" of the server's mux.
// apiHandler serves the REST API v1 (it may be that same mux: the
// dashboard only sends it /v1/ requests, and answers unknown /v1/ paths
// itself with a JSON 404 so that no request loops).
func Handler(apiHandler http.Handler, o Options) http.Handler {
	d := &dashboard{api: apiHandler, log: o.Logger, now: o.Now, tmpl: map[string]*template.Template{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	for _, page := range []string{"login", "fleet", "rollouts", "rollout", "coverage", "exposure", "audit", "safety", "evidence", "error"} {
		d.tmpl[page] = template.Must(template.New("layout.html").Funcs(d.funcs()).
			ParseFS(assets, "templates/layout.html", "templates/"+page+".html"))
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/fleet", http.StatusSeeOther)
	})
	m.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/fleet", http.StatusSeeOther)
	})
	m.HandleFunc("GET /ui/login", d.loginPage)
	m.HandleFunc("POST /ui/login", d.login)
	m.HandleFunc("POST /ui/logout", d.logout)
	m.HandleFunc("GET /ui/fleet", d.page(d.fleet))
	m.HandleFunc("GET /ui/rollouts", d.page(d.rollouts))
	m.HandleFunc("GET /ui/rollouts/{id}", d.page(d.rollout))
	m.HandleFunc("GET /ui/rollouts/{id}/events", d.events)
	m.HandleFunc("POST /ui/rollouts/{id}/command", d.command)
	m.HandleFunc("GET /ui/coverage", d.page(d.coverage))
	m.HandleFunc("GET /ui/exposure", d.page(d.exposure))
	m.HandleFunc("GET /ui/audit", d.page(d.audit))
	m.HandleFunc("GET /ui/safety", d.page(d.safety))
	m.HandleFunc("GET /ui/nodes/{id}/evidence", d.page(d.evidence))
	m.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(api.Error{Error: "no such API route: " + r.Method + " " + r.URL.Path, Code: api.CodeNotFound})
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.render(w, r, http.StatusNotFound, "error", &view{Title: "Not found", Error: "There is no page at " + r.URL.Path + "."})
	})
	d.mux = m
	return http.NewCrossOriginProtection().Handler(securityHeaders(m))
}

// securityHeaders forbids inline scripts and styles, framing and MIME
// sniffing: every script and style is a file under /ui/static/.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// view is what every page template receives; Data is the page's own.
type view struct {
	Title  string
	Nav    string // which nav entry is current
	Me     *api.WhoAmI
	Error  string // shown in an alert at the top
	Notice string // shown in a status box at the top
	// LineStop describes a fleet-wide stop-the-line in force, shown on
	// every page ("" while the line runs).
	LineStop string
	Data     any
}

// pageFunc builds a page for a signed-in user. It returns the template
// name and the view, or an error (an *apiError is shown to the user).
type pageFunc func(r *http.Request, c *client) (string, *view, error)

// page wraps a pageFunc: it reads the token cookie (no cookie: to the
// sign-in page), asks who the user is, builds and renders the page.
func (d *dashboard) page(f pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := d.client(r)
		if !ok {
			d.toLogin(w, r)
			return
		}
		me, err := c.whoami(r.Context())
		if err != nil {
			d.fail(w, r, nil, err)
			return
		}
		c.me = me
		name, v, err := f(r, c)
		if err != nil {
			d.fail(w, r, me, err)
			return
		}
		v.Me = me
		var line api.LineStatus
		if err := c.call(r.Context(), http.MethodGet, "/v1/line", nil, &line); err != nil {
			d.fail(w, r, me, err)
			return
		}
		if line.Stopped {
			v.LineStop = fmt.Sprintf("Line stopped by %s at %s: %s. Nothing is dispatched; %d node(s) still in flight.",
				line.By, line.At.UTC().Format("2006-01-02 15:04:05 UTC"), line.Reason, line.InFlight)
		}
		if done := commandDone(r.URL.Query().Get("done")); v.Notice == "" && done != "" {
			v.Notice = "Rollout " + done + "."
		}
		d.render(w, r, http.StatusOK, name, v)
	}
}

// fail shows err: an expired or revoked token goes back to sign-in, an
// API error is shown with its message, anything else is logged and shown
// as an internal error.
func (d *dashboard) fail(w http.ResponseWriter, r *http.Request, me *api.WhoAmI, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusUnauthorized:
		clearCookie(w, r)
		d.toLogin(w, r)
	case errors.As(err, &ae):
		d.render(w, r, ae.status, "error", &view{Title: http.StatusText(ae.status), Me: me, Error: ae.body.Error})
	case errors.Is(err, context.Canceled):
	default:
		d.log.Error("dashboard page failed", "path", r.URL.Path, "err", err)
		d.render(w, r, http.StatusInternalServerError, "error", &view{Title: "Error", Me: me, Error: "internal error; see the server log"})
	}
}

func (d *dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	var buf bytes.Buffer
	if err := d.tmpl[name].Execute(&buf, v); err != nil {
		d.log.Error("dashboard template failed", "template", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (d *dashboard) toLogin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// client returns an API client for the request's signed-in user.
func (d *dashboard) client(r *http.Request) (*client, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil || !strings.HasPrefix(ck.Value, api.SessionPrefix) {
		return nil, false
	}
	return &client{h: d.api, token: ck.Value, remote: r.RemoteAddr, forwarded: r.Header.Values("X-Forwarded-For")}, true
}

type loginData struct {
	Next string
}

func (d *dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login", &view{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

// login validates the token by asking the API who it belongs to, then
// keeps it in the cookie. The token is never written into a page.
func (d *dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if tok == "" {
		d.render(w, r, http.StatusBadRequest, "login", &view{Title: "Sign in", Error: "Enter your API token.", Data: loginData{Next: next}})
		return
	}
	c := &client{h: d.api, token: tok, remote: r.RemoteAddr, forwarded: r.Header.Values("X-Forwarded-For")}
	var sess api.Session
	if err := c.call(r.Context(), http.MethodPost, "/v1/sessions", struct{}{}, &sess); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && (ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden) {
			d.render(w, r, http.StatusUnauthorized, "login", &view{Title: "Sign in", Error: "That token was not accepted.", Data: loginData{Next: next}})
			return
		}
		d.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sess.Token, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: sess.ExpiresAt, MaxAge: max(1, int((sess.ExpiresAt.Sub(d.now())+time.Second/2)/time.Second))})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout revokes the session in the store (every server refuses it from
// now on) and clears the cookie.
func (d *dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if c, ok := d.client(r); ok {
		if err := c.call(r.Context(), http.MethodDelete, "/v1/sessions/current", nil, nil); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusUnauthorized {
				d.log.Error("dashboard sign-out failed", "err", err)
			}
		}
	}
	clearCookie(w, r)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
}

// safeNext keeps redirects after sign-in on the dashboard: anything that
// is not a dashboard path goes to the fleet page.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "/ui/login") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/fleet"
	}
	return next
}

// commandDone names the outcome of each rollout action the dashboard
// offers ("" for an action it does not offer).
func commandDone(action string) string {
	switch action {
	case "approve":
		return "approved"
	case "pause":
		return "paused"
	case "resume":
		return "resumed"
	case "abort":
		return "aborted"
	case "rollback":
		return "rolling back"
	case "stop":
		return "stopped"
	}
	return ""
}

// command runs a rollout action through the API and goes back to the
// rollout page with the outcome. It sends no If-Match: the page updates
// live, and an operator who pauses or aborts means the rollout as it is
// now; the API still refuses transitions the current state does not allow.
func (d *dashboard) command(w http.ResponseWriter, r *http.Request) {
	c, ok := d.client(r)
	if !ok {
		d.toLogin(w, r)
		return
	}
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	action := r.PostFormValue("action")
	back := "/ui/rollouts/" + url.PathEscape(id)
	if commandDone(action) == "" {
		d.commandFailed(w, r, c, http.StatusBadRequest, "There is no such action.")
		return
	}
	req := api.CommandRequest{Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	err := c.call(r.Context(), http.MethodPost, "/v1/rollouts/"+url.PathEscape(id)+"/"+action, req, nil)
	var ae *apiError
	switch {
	case err == nil:
		http.Redirect(w, r, back+"?done="+url.QueryEscape(action), http.StatusSeeOther)
	case errors.As(err, &ae) && ae.status == http.StatusUnauthorized:
		clearCookie(w, r)
		d.toLogin(w, r)
	case errors.As(err, &ae):
		d.commandFailed(w, r, c, ae.status, "Could not "+action+": "+ae.body.Error)
	default:
		d.log.Error("dashboard command failed", "rollout", id, "action", action, "err", err)
		d.commandFailed(w, r, c, http.StatusInternalServerError, "Could not "+action+": internal error; see the server log")
	}
}

// commandFailed renders the rollout page with why a command failed (the
// API's own answer, never text from the request's URL).
func (d *dashboard) commandFailed(w http.ResponseWriter, r *http.Request, c *client, status int, msg string) {
	me, err := c.whoami(r.Context())
	if err != nil {
		d.fail(w, r, nil, err)
		return
	}
	c.me = me
	name, v, err := d.rollout(r, c)
	if err != nil {
		d.fail(w, r, me, err)
		return
	}
	v.Me, v.Error = me, msg
	d.render(w, r, status, name, v)
}

// events relays the API's event stream of one rollout with the user's
// token. It drops the SSE "event:" lines so that the page's EventSource
// receives every entry as a plain message, whatever its action.
func (d *dashboard) events(w http.ResponseWriter, r *http.Request) {
	c, ok := d.client(r)
	if !ok {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	q := url.Values{}
	if a := r.URL.Query().Get("after"); a != "" {
		q.Set("after", a)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet,
		"/v1/rollouts/"+url.PathEscape(r.PathValue("id"))+"/events?"+q.Encode(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header["X-Forwarded-For"] = c.forwarded
	req.Header.Set("Authorization", "Bearer "+c.token)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		req.Header.Set("Last-Event-ID", v)
	}
	d.api.ServeHTTP(&sseFilter{w: w}, req)
}

// sseFilter passes an SSE stream through, minus its "event:" lines.
type sseFilter struct {
	w       http.ResponseWriter
	partial []byte // an incomplete line, kept until its newline arrives
}

func (f *sseFilter) Header() http.Header         { return f.w.Header() }
func (f *sseFilter) WriteHeader(code int)        { f.w.WriteHeader(code) }
func (f *sseFilter) Unwrap() http.ResponseWriter { return f.w }

func (f *sseFilter) Write(p []byte) (int, error) {
	if !strings.HasPrefix(f.w.Header().Get("Content-Type"), "text/event-stream") {
		return f.w.Write(p) // an error answer: pass it through as is
	}
	f.partial = append(f.partial, p...)
	var out []byte
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := f.partial[:i+1]
		if !bytes.HasPrefix(line, []byte("event:")) {
			out = append(out, line...)
		}
		f.partial = f.partial[i+1:]
	}
	f.partial = bytes.Clone(f.partial)
	if _, err := f.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (f *sseFilter) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}

// client calls the REST API in-process as one user.
type client struct {
	h      http.Handler
	token  string
	remote string // the browser's address, passed on for the API's logs and limits
	// forwarded is the browser's X-Forwarded-For, passed on with remote:
	// the API trusts it only from its configured proxies.
	forwarded []string
	me        *api.WhoAmI // set once the page knows who is calling
}

// apiError is a non-2xx API answer.
type apiError struct {
	status int
	body   api.Error
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.body.Code, e.body.Error)
}

// call sends one API request (body nil for none) and decodes the JSON
// answer into out (nil to discard).
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.RemoteAddr = c.remote
	if len(c.forwarded) > 0 {
		req.Header["X-Forwarded-For"] = c.forwarded
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.h.ServeHTTP(rec, req)
	if rec.status/100 != 2 {
		ae := &apiError{status: rec.status}
		if err := json.Unmarshal(rec.body.Bytes(), &ae.body); err != nil || ae.body.Error == "" {
			ae.body.Error = http.StatusText(rec.status)
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

func (c *client) whoami(ctx context.Context) (*api.WhoAmI, error) {
	var me api.WhoAmI
	if err := c.call(ctx, http.MethodGet, "/v1/whoami", nil, &me); err != nil {
		return nil, err
	}
	return &me, nil
}

// can reports whether the user's role permits action.
func (c *client) can(action string) bool {
	if c.me == nil {
		return false
	}
	for _, a := range c.me.Actions {
		if a == action {
			return true
		}
	}
	return false
}

// allNodes lists every node matching selector ("" for all).
func (c *client) allNodes(ctx context.Context, selector string) ([]api.Node, error) {
	var out []api.Node
	after := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if selector != "" {
			q.Set("selector", selector)
		}
		if after != "" {
			q.Set("after", after)
		}
		var page api.NodeList
		if err := c.call(ctx, http.MethodGet, "/v1/nodes?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Nodes...)
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

// recorder buffers one in-process API answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}
