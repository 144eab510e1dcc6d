package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// Cookie names. The session cookie names a session held in memory; the
// login cookie carries the login form's CSRF token before a session exists
// (double submit), so a third-party page cannot log a browser in as
// someone else.
const (
	sessionCookie = "sluice_session"
	loginCookie   = "sluice_login"
	csrfField     = "csrf"
)

// session is one logged-in browser. Sessions live in this process's
// memory: a restart logs everyone out, and with several control-plane
// replicas a load balancer must keep a browser on one of them. That is
// accepted for the first slice of the dashboard.
type session struct {
	id      string
	p       iam.Principal // the identity at login; role is re-read per request
	epoch   int64         // the identity's session epoch at login
	csrf    string
	created time.Time
	seen    time.Time
	flash   string
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func (s *sessions) setFlash(se *session, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se.flash = msg
}

func (s *sessions) takeFlash(se *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := se.flash
	se.flash = ""
	return f
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (d *Dashboard) idle() time.Duration {
	if d.SessionIdle > 0 {
		return d.SessionIdle
	}
	return time.Hour
}

func (d *Dashboard) maxAge() time.Duration {
	if d.SessionMax > 0 {
		return d.SessionMax
	}
	return 12 * time.Hour
}

// lookup finds a live session by id and marks it seen; expired sessions
// are dropped here and at every login.
func (d *Dashboard) lookup(id string) *session {
	now := d.now()
	d.sessions.mu.Lock()
	defer d.sessions.mu.Unlock()
	se, ok := d.sessions.m[id]
	if !ok {
		return nil
	}
	if now.Sub(se.seen) > d.idle() || now.Sub(se.created) > d.maxAge() {
		delete(d.sessions.m, id)
		return nil
	}
	se.seen = now
	return se
}

// alive reports whether se is still a live session, without counting
// the question as activity: an open status stream must not keep an idle
// session alive, and must end when its session does (logout, expiry).
func (d *Dashboard) alive(se *session) bool {
	now := d.now()
	d.sessions.mu.Lock()
	defer d.sessions.mu.Unlock()
	return d.sessions.m[se.id] == se && now.Sub(se.seen) <= d.idle() && now.Sub(se.created) <= d.maxAge()
}

func (d *Dashboard) sweep() {
	now := d.now()
	d.sessions.mu.Lock()
	defer d.sessions.mu.Unlock()
	for id, se := range d.sessions.m {
		if now.Sub(se.seen) > d.idle() || now.Sub(se.created) > d.maxAge() {
			delete(d.sessions.m, id)
		}
	}
}

// secure reports whether cookies get the Secure flag: when this request
// came over TLS, or TLS ends in front of the control plane.
func (d *Dashboard) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(d.PublicURL, "https://")
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: d.secure(r)})
}

type sessionKey struct{}

// request is what authed learnt about a request: its session and the
// principal it acts as (with the role read for this request, so the
// shared session is never written by concurrent requests).
type request struct {
	se *session
	p  iam.Principal
}

func sessionOf(r *http.Request) *request {
	rq, _ := r.Context().Value(sessionKey{}).(*request)
	return rq
}

// principal is who the request acts as, for the domain services.
func principal(r *http.Request) iam.Principal { return sessionOf(r).p }

// current returns the request's live session, or nil.
func (d *Dashboard) current(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return d.lookup(c.Value)
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authed admits requests of a live session whose identity still exists
// and holds at least minRole; every POST must carry the session's CSRF
// token. The identity is read again on every request, so a changed role
// or a deleted user takes effect at once, as it does for API tokens.
func (d *Dashboard) authed(minRole string, h http.HandlerFunc) http.Handler {
	need := iam.RoleRank(minRole)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		se := d.current(r)
		if se == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			d.render(w, r, http.StatusUnauthorized, "error", view{Title: "Logged out", Error: "your session has ended: log in again"})
			return
		}
		id, ended, err := d.account(r.Context(), se)
		if err != nil {
			// A store that fails for a moment must not log everyone out.
			d.fail(w, r, err)
			return
		}
		if ended != "" {
			d.dropSession(w, r, se)
			d.render(w, r, http.StatusUnauthorized, "error", view{Title: "Logged out", Error: ended + ": log in again"})
			return
		}
		p := se.p
		p.Role = id.Role
		p.Source, p.RequestID = clientAddr(r), obs.RequestID(r.Context())
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, &request{se: se, p: p}))
		if r.Method == http.MethodPost {
			if err := d.readForm(w, r); err != nil {
				status, msg := d.message(r, err)
				d.render(w, r, status, "error", view{Title: "Refused", Error: msg})
				return
			}
			// The token must come in the body: a URL can end up in logs and Referer headers.
			if !sameToken(r.PostFormValue(csrfField), se.csrf) {
				d.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Error: "the form is out of date or did not come from this dashboard (missing or wrong CSRF token): reload the page and try again"})
				return
			}
		}
		if iam.RoleRank(p.Role) < need {
			d.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Error: "the " + p.Role + " role may not do this"})
			return
		}
		h(w, r)
	})
}

// account reads the session's identity from the store and says why the
// session is over, if it is: the identity is gone, or its password was set
// or its role lowered since the login (its session epoch moved). The store
// holds the epoch, so a change made through any replica ends the session
// on all of them.
func (d *Dashboard) account(ctx context.Context, se *session) (store.Identity, string, error) {
	id, err := d.Store.GetIdentityByID(ctx, se.p.SubjectID)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && id.InstanceID != se.p.InstanceID):
		return id, "your user no longer exists", nil
	case err != nil:
		return id, "", err
	case id.SessionEpoch != se.epoch:
		return id, "your password or role was changed", nil
	}
	return id, "", nil
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func (d *Dashboard) dropSession(w http.ResponseWriter, r *http.Request, se *session) {
	d.sessions.mu.Lock()
	delete(d.sessions.m, se.id)
	d.sessions.mu.Unlock()
	d.setCookie(w, r, sessionCookie, "", -1)
}

// afterLogin is where a login lands when next= is missing or refused.
const afterLogin = "/runtimes"

// safeNext keeps the after-login redirect on this site: it accepts only a
// path of this origin and answers afterLogin for anything else. Browsers
// strip tabs and newlines from a Location and treat a backslash as a slash, so
// "/\t/evil.example" would become "//evil.example", another origin: any
// control character or backslash, raw or percent-encoded, refuses it, as
// does a path that starts with "//" before or after decoding.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || hasUnsafeByte(next) {
		return afterLogin
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return afterLogin
	}
	if !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || hasUnsafeByte(u.Path) || hasUnsafeByte(u.RawQuery+u.Fragment) {
		return afterLogin
	}
	if u.Path == "/login" || strings.HasPrefix(u.Path, "/login/") {
		return afterLogin // no loop back to the form
	}
	// Resolved against a stand-in origin, the target must stay on it.
	base := &url.URL{Scheme: "https", Host: "dashboard.invalid", Path: "/"}
	if res := base.ResolveReference(u); res.Host != base.Host || res.Scheme != base.Scheme {
		return afterLogin
	}
	return next
}

// hasUnsafeByte reports control characters (C0, DEL), backslashes and
// percent-encoded forms of them.
func hasUnsafeByte(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return true
		}
		if c == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && (v < 0x20 || v == 0x7f || v == '\\') {
				return true
			}
		}
	}
	return false
}

type loginPage struct {
	Next string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.current(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.showLogin(w, r, http.StatusOK, map[string]string{}, "")
}

// showLogin renders the login form with a fresh login CSRF token.
func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, form map[string]string, formErr string) {
	tok := randomToken()
	d.setCookie(w, r, loginCookie, tok, 3600)
	next := form["next"]
	if next == "" {
		next = r.URL.Query().Get("next")
	}
	d.render(w, r, status, "login", view{Title: "Log in", CSRF: tok, Form: form, FormErr: formErr, Page: loginPage{Next: safeNext(next)}})
}

var (
	dummyOnce sync.Once
	dummyHash string
)

// badLogin is the one answer to every failed login: it does not say
// whether the instance, the user or the password was wrong.
const badLogin = "the instance id, user name or password is not right"

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	form := map[string]string{"instance": strings.TrimSpace(r.FormValue("instance")), "username": strings.TrimSpace(r.FormValue("username")), "next": r.FormValue("next")}
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue(csrfField), c.Value) {
		d.showLogin(w, r, http.StatusForbidden, form, "the login form is out of date or did not come from this dashboard: try again")
		return
	}
	password := secret.New(r.FormValue("password"))
	if form["instance"] == "" || form["username"] == "" || password.IsZero() {
		d.showLogin(w, r, http.StatusBadRequest, form, "give the instance id, your user name and your password")
		return
	}
	ctx := r.Context()
	// Counted before the password is checked, so parallel guesses cannot
	// all be checked before the first failure counts; a success gives the
	// attempt back.
	userKey := "user|" + clientAddr(r) + "|" + form["instance"] + "|" + form["username"]
	addrKey := "addr|" + clientAddr(r)
	if until, ok := d.logins.reserve(d.now(), limitKey{userKey, loginFailures}, limitKey{addrKey, loginAddressFailures}); !ok {
		secs := int(until.Sub(d.now())/time.Second) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		d.showLogin(w, r, http.StatusTooManyRequests, form, fmt.Sprintf("too many failed logins from your address (%d per user, %d in all, in %d minutes): try again in %d minutes",
			loginFailures, loginAddressFailures, int(loginWindow/time.Minute), secs/60+1))
		return
	}
	p := iam.Principal{InstanceID: form["instance"], SubjectKind: store.KindUser, SubjectName: form["username"],
		Source: clientAddr(r), RequestID: obs.RequestID(ctx)}
	_, instErr := d.Store.GetInstance(ctx, form["instance"])
	var id store.Identity
	var idErr error = instErr
	if instErr == nil {
		id, idErr = d.Store.GetIdentity(ctx, form["instance"], store.KindUser, form["username"])
	}
	known := idErr == nil && id.PasswordHash != ""
	if !d.logins.acquire(ctx, known) {
		return
	}
	defer d.logins.release(known)
	ok := false
	if known {
		ok = iam.VerifyPassword(password, id.PasswordHash)
	} else {
		// Verify against a throwaway hash, so an unknown user costs as much
		// time as a wrong password and the timing does not tell them apart.
		dummyOnce.Do(func() { dummyHash, _ = iam.HashPassword(secret.New(randomToken())) })
		iam.VerifyPassword(password, dummyHash)
	}
	if instErr == nil {
		// Logins are audited like token exchanges: refused ones too.
		var outcome error
		if !ok {
			outcome = iam.ErrBadCredentials
		}
		if aerr := d.IAM.Finish(ctx, p, "session.create", "user/"+form["username"], outcome); ok && aerr != nil {
			d.Log.ErrorContext(r.Context(), "dashboard login not audited", "request_id", p.RequestID, "err", aerr)
			d.showLogin(w, r, http.StatusInternalServerError, form, "the login could not be recorded in the audit log; try again")
			return
		}
	}
	if !ok {
		d.showLogin(w, r, http.StatusUnauthorized, form, badLogin)
		return
	}
	d.logins.succeed(userKey, addrKey)
	d.sweep()
	now := d.now()
	p.SubjectID, p.Role = id.ID, id.Role
	se := &session{id: randomToken(), p: p, epoch: id.SessionEpoch, csrf: randomToken(), created: now, seen: now}
	d.sessions.mu.Lock()
	d.sessions.m[se.id] = se
	d.sessions.mu.Unlock()
	d.setCookie(w, r, loginCookie, "", -1)
	d.setCookie(w, r, sessionCookie, se.id, int(d.maxAge().Seconds()))
	http.Redirect(w, r, safeNext(form["next"]), http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	rq := sessionOf(r)
	d.dropSession(w, r, rq.se)
	if err := d.IAM.Finish(r.Context(), rq.p, "session.delete", "user/"+rq.p.SubjectName, nil); err != nil {
		d.Log.ErrorContext(r.Context(), "dashboard logout not audited", "request_id", rq.p.RequestID, "err", err)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
