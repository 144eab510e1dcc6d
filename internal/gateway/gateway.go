package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/secret"
)

// Gateway holds the compiled state and the rate-limit counters. Check is
// safe for concurrent use and takes no lock on the state: Apply swaps a
// new compiled state in atomically.
type Gateway struct {
	now   clock.Func
	state atomic.Pointer[compiled]

	windows sync.Map // app + "\x00" + plan → *window; kept across Apply
	sweeps  atomic.Int64
}

// New returns a gateway that enforces nothing until the first Apply.
func New(now clock.Func) *Gateway {
	g := &Gateway{now: now}
	g.state.Store(&compiled{})
	return g
}

// Revision is the revision of the state being enforced (0 before any).
func (g *Gateway) Revision() int64 { return g.state.Load().revision }

// Enforced reports whether any flow of the current state is protected.
func (g *Gateway) Enforced() bool {
	c := g.state.Load()
	return len(c.flows) > 0 || c.basic != nil
}

type compiled struct {
	revision int64
	flows    map[string]*capi // "project/flow" → its enforced API
	creds    map[string]*ccred
	keys     jose.JSONWebKeySet
	issuer   string
	audience string
	basic    map[string][32]byte // forceFlowBasicAuth: user → password hash

	tmu    sync.Mutex
	tokens map[string]tokenClaims // verified bearer tokens of this state
}

type capi struct {
	api   API
	plans []*Plan
	open  *Plan // a none plan: callers without credentials pass
	// challenge is the WWW-Authenticate value of a 401.
	challenge string
	// value and planValues are the API's and its plans' parts of `.app`,
	// built once per state (see Caller.Value).
	value      any
	planValues map[*Plan]any
}

type capp struct {
	app  App
	subs map[string]*window // plan id → the rate window of an active subscription
	// The app's parts of `.app`, built once per state.
	id, name, org, catalog any
}

type ccred struct {
	hash     [32]byte
	app      *capp
	expires  time.Time
	clientID string
	// passes holds the Callers this credential passed as, one per plan,
	// built at its first pass through that plan. It lives and dies with
	// its compiled state, so a new state (a revocation, an unsubscribe, a
	// disabled app) starts with none; and it only saves building the
	// Caller: every call is still decided in full before it is used.
	passes atomic.Pointer[[]*Caller]
}

// maxPasses bounds a credential's remembered Callers (an app subscribed to
// more plans than this gets the rest built per call).
const maxPasses = 16

// pass is the Caller of a call of cr that plan of api let through.
func (cr *ccred) pass(api *capi, plan *Plan) *Caller {
	old := cr.passes.Load()
	if old != nil {
		for _, c := range *old {
			if c.plan == plan {
				return c
			}
		}
	}
	app := cr.app
	c := &Caller{
		AppID: app.app.ID, AppName: app.app.Name,
		ConsumerOrgID: app.app.ConsumerOrgID, ConsumerOrgName: app.app.ConsumerOrgName,
		CatalogID: app.app.CatalogID, CatalogName: app.app.CatalogName,
		PlanID: plan.ID, PlanName: plan.Name, APIID: api.api.ID, APIName: api.api.Name,
		ClientID: cr.clientID, Auth: plan.Auth, plan: plan,
	}
	c.value = map[string]any{"id": app.id, "name": app.name, "consumerOrg": app.org, "catalog": app.catalog,
		"plan": api.planValues[plan], "api": api.value, "clientId": cr.clientID, "auth": plan.Auth}
	// Concurrent first passes may each build one; whichever is stored
	// first is kept, the others serve their one call.
	for old == nil || len(*old) < maxPasses {
		var next []*Caller
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, c)
		if cr.passes.CompareAndSwap(old, &next) {
			break
		}
		old = cr.passes.Load()
	}
	return c
}

// Apply checks s and swaps it in; an invalid state changes nothing and
// the error names what is wrong.
func (g *Gateway) Apply(s State) error {
	c, err := g.compile(s)
	if err != nil {
		return err
	}
	g.state.Store(c)
	return nil
}

func (g *Gateway) compile(s State) (*compiled, error) {
	c := &compiled{revision: s.Revision, flows: map[string]*capi{}, creds: map[string]*ccred{},
		issuer: s.Issuer, audience: s.Audience, tokens: map[string]tokenClaims{}}
	if len(s.Keys) > 0 {
		if err := json.Unmarshal(s.Keys, &c.keys); err != nil {
			return nil, fmt.Errorf("gateway state: keys are not a JWKS: %w", err)
		}
	}
	apps := make(map[string]*capp, len(s.Apps))
	for _, a := range s.Apps {
		apps[a.ID] = &capp{app: a, subs: map[string]*window{}, id: a.ID, name: a.Name,
			org:     map[string]any{"id": a.ConsumerOrgID, "name": a.ConsumerOrgName},
			catalog: map[string]any{"id": a.CatalogID, "name": a.CatalogName}}
	}
	for _, sub := range s.Subscriptions {
		if a := apps[sub.AppID]; a != nil && sub.Active {
			a.subs[sub.PlanID] = g.window(sub.AppID, sub.PlanID)
		}
	}
	for _, cr := range s.Credentials {
		a := apps[cr.AppID]
		if a == nil {
			return nil, fmt.Errorf("gateway state: credential %s names app %s, which is not in the state", cr.ClientID, cr.AppID)
		}
		h, err := decodeHash(cr.SecretHash)
		if err != nil {
			return nil, fmt.Errorf("gateway state: credential %s: %w", cr.ClientID, err)
		}
		c.creds[cr.ClientID] = &ccred{hash: h, app: a, expires: cr.ExpiresAt, clientID: cr.ClientID}
	}
	for i := range s.APIs {
		api := s.APIs[i]
		ca := &capi{api: api, value: map[string]any{"id": api.ID, "name": api.Name}, planValues: map[*Plan]any{}}
		var challenges []string
		for j := range api.Plans {
			p := &api.Plans[j]
			switch p.Auth {
			case AuthNone:
				ca.open = p
				continue
			case AuthClientID:
				challenges = append(challenges, fmt.Sprintf(`X-IBM-Client-Id realm=%q`, api.Name))
			case AuthOAuth:
				challenges = append(challenges, fmt.Sprintf(`Bearer realm=%q`, api.Name))
			default:
				return nil, fmt.Errorf("gateway state: plan %s of API %s has auth %q: want %s, %s or %s", p.Name, api.Name, p.Auth, AuthClientID, AuthOAuth, AuthNone)
			}
			if p.RateLimit.Requests < 0 || (p.RateLimit.Requests > 0 && p.RateLimit.Window <= 0) {
				return nil, fmt.Errorf("gateway state: plan %s of API %s: a rate limit needs a positive count and window", p.Name, api.Name)
			}
			ca.plans = append(ca.plans, p)
			ca.planValues[p] = map[string]any{"id": p.ID, "name": p.Name}
		}
		ca.challenge = strings.Join(dedupe(challenges), ", ")
		if len(ca.plans) == 0 {
			continue // only open plans: nothing to enforce
		}
		for _, f := range api.Flows {
			if prev := c.flows[f]; prev != nil {
				return nil, fmt.Errorf("gateway state: flow %s is in API %s and in API %s", f, prev.api.Name, api.Name)
			}
			c.flows[f] = ca
		}
	}
	if len(s.BasicAuth) > 0 || s.ForceBasicAuth {
		c.basic = map[string][32]byte{}
		for _, b := range s.BasicAuth {
			h, err := decodeHash(b.PasswordHash)
			if err != nil {
				return nil, fmt.Errorf("gateway state: basic credential %s: %w", b.Username, err)
			}
			c.basic[b.Username] = h
		}
	}
	return c, nil
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func decodeHash(h string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(out) {
		return out, fmt.Errorf("secret hash is not 64 hex digits of SHA-256")
	}
	copy(out[:], b)
	return out, nil
}

// HashSecret is the hash the state carries for a secret: hex SHA-256.
func HashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func matches(presented string, want [32]byte) bool {
	// Secrets of Sluice's formats fit the buffer on the stack, which
	// spares a copy on the heap per call; longer ones are hashed all the same.
	var buf [128]byte
	h := sha256.Sum256(append(buf[:0], presented...))
	return subtle.ConstantTimeCompare(h[:], want[:]) == 1
}

// Refusal is a request the gateway answers itself.
type Refusal struct {
	Status  int
	Message string
	Header  http.Header // WWW-Authenticate, Retry-After, RateLimit…
}

func (r *Refusal) Error() string { return r.Message }

// errorBody is the control plane's error shape (internal/api), so that
// scripts reading Sluice's errors read the gateway's the same way.
type errorBody struct {
	Error     string `json:"error"`
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
}

// Write answers the refusal as JSON.
func (r *Refusal) Write(w http.ResponseWriter, requestID string) {
	h := w.Header()
	for k, v := range r.Header {
		h[k] = v
	}
	data, _ := json.Marshal(errorBody{Error: "Internal error", Code: r.Status, Reason: strings.ReplaceAll(http.StatusText(r.Status), " ", ""),
		Message: r.Message, RequestID: requestID})
	data = append(data, '\n')
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(r.Status)
	_, _ = w.Write(data)
}

func unauthorized(challenge, msg string) *Refusal {
	return &Refusal{Status: http.StatusUnauthorized, Message: msg, Header: http.Header{"Www-Authenticate": {challenge}}}
}

func forbidden(msg string) *Refusal { return &Refusal{Status: http.StatusForbidden, Message: msg} }

// Check decides one request to flow ("project/flow"). It returns the
// caller when an app passed a plan, nil when the flow is open (or an open
// plan let an anonymous caller through), or a refusal to answer instead of
// running the flow.
func (g *Gateway) Check(flow string, r *http.Request) (*Caller, *Refusal) {
	c := g.state.Load()
	api := c.flows[flow]
	if api == nil {
		if c.basic != nil {
			return nil, c.checkBasic(r)
		}
		return nil, nil
	}
	now := g.now.Now()
	var (
		cred   *ccred
		auth   string
		secret string
	)
	clientID := header(r, "X-Ibm-Client-Id")
	if authz := header(r, "Authorization"); len(authz) > 7 && strings.EqualFold(authz[:7], "bearer ") {
		auth = AuthOAuth
		tc, ok := c.verifyToken(strings.TrimSpace(authz[7:]), now)
		if !ok {
			return nil, unauthorized(`Bearer realm=`+strconv.Quote(api.api.Name)+`, error="invalid_token"`, "the bearer token is not valid: it does not verify, has expired or was not issued to an app")
		}
		if cred = c.creds[tc.ClientID]; cred == nil {
			return nil, unauthorized(`Bearer realm=`+strconv.Quote(api.api.Name)+`, error="invalid_token"`, "the bearer token's credential was revoked or has expired")
		}
	} else if clientID != "" {
		auth = AuthClientID
		if cred = c.creds[clientID]; cred == nil {
			return nil, unauthorized(api.challenge, "X-IBM-Client-Id names no valid app credential")
		}
		secret = header(r, "X-Ibm-Client-Secret")
		if secret != "" && !matches(secret, cred.hash) {
			return nil, unauthorized(api.challenge, "X-IBM-Client-Secret does not match X-IBM-Client-Id")
		}
	} else {
		if api.open != nil {
			return nil, nil
		}
		return nil, unauthorized(api.challenge, "API "+api.api.Name+" needs credentials: "+api.describe())
	}
	if !cred.expires.IsZero() && !now.Before(cred.expires) {
		return nil, unauthorized(api.challenge, "the app credential has expired")
	}
	app := cred.app
	if !app.app.Enabled {
		return nil, forbidden("app " + app.app.Name + " is disabled")
	}
	var (
		plan       *Plan
		win        *window
		needSecret bool
	)
	for _, p := range api.plans {
		w := app.subs[p.ID]
		if p.Auth != auth || w == nil {
			continue
		}
		if p.ClientSecret && secret == "" {
			needSecret = true
			continue
		}
		plan, win = p, w
		break
	}
	if plan == nil {
		if needSecret {
			return nil, unauthorized(api.challenge, "the plan app "+app.app.Name+" is subscribed to needs X-IBM-Client-Secret as well")
		}
		if api.open != nil {
			return nil, nil
		}
		return nil, forbidden("app " + app.app.Name + " has no active subscription to a plan of API " + api.api.Name + " that accepts " + authName(auth))
	}
	if ref := allow(win, plan, now); ref != nil {
		return nil, ref
	}
	return cred.pass(api, plan), nil
}

// header reads a header by its canonical name without canonicalising it
// again on every request (the server stores them canonical).
func header(r *http.Request, canonical string) string {
	if v := r.Header[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func authName(auth string) string {
	if auth == AuthOAuth {
		return "bearer tokens"
	}
	return "X-IBM-Client-Id"
}

// describe says what the API's plans accept, for the 401 message.
func (a *capi) describe() string {
	var parts []string
	seen := map[string]bool{}
	for _, p := range a.plans {
		if !seen[p.Auth] {
			seen[p.Auth] = true
			if p.Auth == AuthOAuth {
				parts = append(parts, "Authorization: Bearer <token from the token endpoint>")
			} else {
				parts = append(parts, "X-IBM-Client-Id")
			}
		}
	}
	return strings.Join(parts, " or ")
}

// BasicPasswordPrefix starts every flow basic password (the token format
// of package secret, so leak scanners find them and a look-alike is refused
// before its hash is compared). None without the checksum was ever stored:
// the format came before any release.
const BasicPasswordPrefix = "slfb_"

// checkBasic enforces forceFlowBasicAuth (RFC 7617).
func (c *compiled) checkBasic(r *http.Request) *Refusal {
	user, pass, ok := r.BasicAuth()
	if ok {
		if want, known := c.basic[user]; known && secret.WellFormed(pass, BasicPasswordPrefix) && matches(pass, want) {
			return nil
		}
	}
	ref := unauthorized(`Basic realm="flows", charset="UTF-8"`, "the flows of this runtime need HTTP basic credentials")
	if ok {
		ref.Message = "the basic credentials are not valid"
	}
	return ref
}
