package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
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

// Cookie names. The session cookie names a session held in the store; the
// login cookie carries the login form's CSRF token before a session exists
// (double submit), so a third-party page cannot log a browser in as
// someone else.
const (
	sessionCookie = "sluice_session"
	loginCookie   = "sluice_login"
	csrfField     = "csrf"
)

// session is one logged-in browser. Sessions live in the store, keyed by
// the SHA-256 hash of their id, so any control-plane replica serves any
// browser, a logout at one replica ends the session at all of them, and a
// restart logs nobody out. The id itself is only in the browser's cookie.
type session struct {
	id      string
	hash    string
	p       iam.Principal // the identity at login; role is re-read per request
	epoch   int64         // the identity's session epoch at login
	csrf    string
	created time.Time
	seen    time.Time
	flash   string // as read with the session; taken from the store once shown
}

// seenPrecision is how far a session's last activity may lag behind: the
// store is written at most once a minute per session, not on every page,
// so a session may outlive its idle time by up to this much.
const seenPrecision = time.Minute

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
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

func (d *Dashboard) expired(se store.DashboardSession, now time.Time) bool {
	return now.Sub(se.SeenAt) > d.idle() || now.Sub(se.CreatedAt) > d.maxAge()
}

// lookup finds a live session by id and marks it seen; an expired session
// is deleted here (and all expired ones at every login). nil, nil: no such
// live session.
func (d *Dashboard) lookup(ctx context.Context, id string) (*session, error) {
	now := d.now()
	h := sessionHash(id)
	st, err := d.Store.GetDashboardSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.expired(st, now) {
		if err := d.Store.DeleteDashboardSession(ctx, h); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, nil
	}
	if now.Sub(st.SeenAt) >= seenPrecision {
		err := d.Store.TouchDashboardSession(ctx, h, now)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil // logged out at this moment, maybe at another replica
		}
		if err != nil {
			return nil, err
		}
		st.SeenAt = now
	}
	return &session{id: id, hash: h, epoch: st.Epoch, csrf: st.CSRF, created: st.CreatedAt, seen: st.SeenAt, flash: st.Flash,
		p: iam.Principal{InstanceID: st.InstanceID, SubjectID: st.IdentityID, SubjectKind: store.KindUser, SubjectName: st.SubjectName}}, nil
}

// alive reports whether se is still a live session, without counting
// the question as activity: an open status stream must not keep an idle
// session alive, and must end when its session does (logout at any
// replica, expiry). A store that cannot answer ends the stream too; the
// browser reconnects and asks again.
func (d *Dashboard) alive(ctx context.Context, se *session) bool {
	st, err := d.Store.GetDashboardSession(ctx, se.hash)
	return err == nil && !d.expired(st, d.now())
}

// sweep deletes every expired session.
func (d *Dashboard) sweep(ctx context.Context) {
	now := d.now()
	if _, err := d.Store.DeleteExpiredDashboardSessions(ctx, now.Add(-d.idle()), now.Add(-d.maxAge())); err != nil {
		d.Log.WarnContext(ctx, "expired dashboard sessions not deleted", "request_id", obs.RequestID(ctx), "err", err)
	}
}

// setFlash keeps a message for the session's next page.
func (d *Dashboard) setFlash(ctx context.Context, se *session, msg string) {
	if err := d.Store.SetDashboardSessionFlash(ctx, se.hash, msg); err != nil && !errors.Is(err, store.ErrNotFound) {
		d.Log.WarnContext(ctx, "dashboard message not kept", "request_id", obs.RequestID(ctx), "err", err)
	}
}

// takeFlash returns the session's message once; the store is asked only
// when the session had one when it was read.
func (d *Dashboard) takeFlash(ctx context.Context, se *session) string {
	if se.flash == "" {
		return ""
	}
	f, err := d.Store.TakeDashboardSessionFlash(ctx, se.hash)
	if err != nil {
		return ""
	}
	se.flash = ""
	return f
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
func (d *Dashboard) current(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	return d.lookup(r.Context(), c.Value)
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
		se, err := d.current(r)
		if err != nil {
			// A store that fails for a moment must not log everyone out.
			d.fail(w, r, err)
			return
		}
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
			_ = d.dropSession(w, r, se) // a session left behind fails the same check next time
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

// dropSession ends se everywhere and clears the browser's cookie.
func (d *Dashboard) dropSession(w http.ResponseWriter, r *http.Request, se *session) error {
	d.setCookie(w, r, sessionCookie, "", -1)
	if err := d.Store.DeleteDashboardSession(r.Context(), se.hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
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
	if se, _ := d.current(r); se != nil {
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
	d.sweep(ctx)
	now := d.now()
	sid := randomToken()
	if err := d.Store.PutDashboardSession(ctx, store.DashboardSession{IDHash: sessionHash(sid), InstanceID: id.InstanceID, IdentityID: id.ID,
		SubjectName: id.Name, Epoch: id.SessionEpoch, CSRF: randomToken(), CreatedAt: now, SeenAt: now}); err != nil {
		d.Log.ErrorContext(ctx, "dashboard session not stored", "request_id", p.RequestID, "err", err)
		d.showLogin(w, r, http.StatusServiceUnavailable, form, "the session could not be stored; try again")
		return
	}
	d.setCookie(w, r, loginCookie, "", -1)
	d.setCookie(w, r, sessionCookie, sid, int(d.maxAge().Seconds()))
	http.Redirect(w, r, safeNext(form["next"]), http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	rq := sessionOf(r)
	if err := d.dropSession(w, r, rq.se); err != nil {
		// Not ended in the store: say so rather than pretend.
		d.fail(w, r, err)
		return
	}
	if err := d.IAM.Finish(r.Context(), rq.p, "session.delete", "user/"+rq.p.SubjectName, nil); err != nil {
		d.Log.ErrorContext(r.Context(), "dashboard logout not audited", "request_id", rq.p.RequestID, "err", err)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
