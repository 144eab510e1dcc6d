package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/wire"
)

// ---- token exchange (App Connect) ----

// tokenRequestBody is the body of POST /api/v1/tokens.
type tokenRequestBody struct {
	APIKey secret.Value `json:"apiKey"`
}

// postTokens is App Connect's token exchange: client id, secret and
// instance id in headers, the API key in the body.
func (a *API) postTokens(w http.ResponseWriter, r *http.Request) {
	if !singleHeaders(w, r, "X-IBM-Client-Id", "X-IBM-Client-Secret", "X-IBM-Instance-Id") {
		return
	}
	if msg, over := a.sourceExhausted(w, r); over {
		writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", msg)
		return
	}
	var body tokenRequestBody
	b, err := readJSONBody(w, r, maxJSONBody)
	if err == nil {
		if v, ok := plainAPIKeyBody(b); ok {
			body.APIKey = secret.New(v)
		} else {
			err = decodeJSONBytes(b, &body, maxJSONBody)
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp, err := a.IAM.ExchangeAPIKey(r.Context(), iam.TokenRequest{
		ClientID:        headerValue(r, "X-IBM-Client-Id"),
		ClientSecret:    secret.New(headerValue(r, "X-IBM-Client-Secret")),
		InstanceID:      headerValue(r, "X-IBM-Instance-Id"),
		RequireInstance: true,
		APIKey:          body.APIKey,
		Source:          clientAddr(r),
		RequestID:       obs.RequestID(r.Context()),
		Admit:           a.admit(w),
	})
	if iam.KindOf(err) == iam.KindUnauthorized {
		if msg, over := a.failed(w, r); over {
			writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", msg)
			return
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

// plainAPIKeyBody reads the body nearly every exchange sends,
// {"apiKey":"…"} with a value of printable ASCII and no escapes, without
// the strict decoder's passes (a token scan for repeated keys, a decode by
// reflection, a check for trailing data: a twentieth of the exchange's
// CPU). It accepts only bodies the strict decoder accepts, with the same
// result; anything else (other spacing is fine) is left to it, which
// refuses or decodes as before.
func plainAPIKeyBody(b []byte) (string, bool) {
	const field = `"apiKey"`
	i := skipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i = skipJSONSpace(b, i+1)
	if !bytes.HasPrefix(b[i:], []byte(field)) {
		return "", false
	}
	i = skipJSONSpace(b, i+len(field))
	if i >= len(b) || b[i] != ':' {
		return "", false
	}
	i = skipJSONSpace(b, i+1)
	if i >= len(b) || b[i] != '"' {
		return "", false
	}
	start := i + 1
	for i = start; i < len(b) && b[i] != '"'; i++ {
		if c := b[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return "", false
		}
	}
	if i >= len(b) {
		return "", false
	}
	v := string(b[start:i])
	i = skipJSONSpace(b, i+1)
	if i >= len(b) || b[i] != '}' {
		return "", false
	}
	if skipJSONSpace(b, i+1) != len(b) {
		return "", false
	}
	return v, true
}

// skipJSONSpace is the index of the first byte at or after i that is not
// JSON whitespace (RFC 8259 §2).
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// ---- users and service IDs ----

// Identity is a user or service ID as the API shows it.
type Identity struct {
	Metadata Metadata       `json:"metadata"`
	Spec     IdentitySpec   `json:"spec"`
	Status   IdentityStatus `json:"status"`
}

// IdentitySpec is what a caller sets. Password is write-only.
type IdentitySpec struct {
	Role        string  `json:"role"`
	Description string  `json:"description"`
	Password    *string `json:"password,omitempty"`
}

// IdentityStatus is what the server reports.
type IdentityStatus struct {
	PasswordSet *bool `json:"passwordSet,omitempty"`
}

func identityObject(id store.Identity) Identity {
	o := Identity{
		Metadata: Metadata{Name: id.Name, ID: id.ID, CreatedAt: timestamp(id.CreatedAt), CreatedBy: id.CreatedBy, UpdatedAt: timestamp(id.UpdatedAt)},
		Spec:     IdentitySpec{Role: id.Role, Description: id.Description},
	}
	if id.Kind == store.KindUser {
		set := id.PasswordHash != ""
		o.Status.PasswordSet = &set
	}
	return o
}

func listKey(kind string) string {
	if kind == store.KindServiceID {
		return "serviceIds"
	}
	return "users"
}

func (a *API) listIdentities(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		answerList(a, w, r, listKey(kind), func(req iam.ListRequest) (iam.ListPage[store.Identity], error) {
			return a.IAM.ListIdentities(r.Context(), principal(r), kind, req)
		}, identityObject)
	}
}

func (a *API) getIdentity(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := a.IAM.GetIdentity(r.Context(), principal(r), kind, r.PathValue("name"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, identityObject(id))
	}
}

// putIdentity serves PUT /{name} (create or replace) and POST on the
// collection (create; 409 if the name is taken).
func (a *API) putIdentity(kind string, createOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in Identity
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
		name, err := nameFor(r, in.Metadata.Name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		input := iam.IdentityInput{Kind: kind, Name: name, Description: in.Spec.Description, Role: in.Spec.Role}
		if in.Spec.Password != nil {
			input.Password = secret.New(*in.Spec.Password)
		}
		id, created, err := a.IAM.PutIdentity(r.Context(), principal(r), input, createOnly)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, createdStatus(created), identityObject(id))
	}
}

func (a *API) deleteIdentity(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := a.IAM.DeleteIdentity(r.Context(), principal(r), kind, r.PathValue("name")); err != nil {
			a.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// nameFor reconciles the name in the path (PUT) with metadata.name.
func nameFor(r *http.Request, bodyName string) (string, error) {
	pathName := r.PathValue("name")
	switch {
	case pathName == "":
		return bodyName, nil
	case bodyName != "" && bodyName != pathName:
		return "", &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("metadata.name %q does not match the name in the path %q", bodyName, pathName)}
	}
	return pathName, nil
}

func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// ---- API keys ----

// APIKey is an API key as the API shows it; its value never appears.
type APIKey struct {
	Metadata Metadata     `json:"metadata"`
	Spec     APIKeySpec   `json:"spec"`
	Status   APIKeyStatus `json:"status"`
}

// APIKeySpec is what a caller sets when creating a key.
type APIKeySpec struct {
	Description string `json:"description"`
	Owner       *Owner `json:"owner,omitempty"`
	ExpiresAt   string `json:"expiresAt,omitempty"`
}

// APIKeyStatus is what the server reports about a key.
type APIKeyStatus struct {
	Locked     bool   `json:"locked"`
	Expired    bool   `json:"expired"`
	Hint       string `json:"hint"`
	LastUsedAt string `json:"lastUsedAt,omitempty"`
}

// APIKeyDownload is the JSON document a new key's owner can save.
type APIKeyDownload struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Created     string `json:"created"`
	Key         string `json:"key"`
}

// APIKeyFile is the download in IBM Cloud's apiKey.json shape.
type APIKeyFile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	CreatedAt   string `json:"createdAt"`
	APIKey      string `json:"apikey"`
}

// APIKeyCreated is the one answer that carries a key's value.
type APIKeyCreated struct {
	APIKey
	Key        string         `json:"key"`
	Download   APIKeyDownload `json:"download"`
	APIKeyJSON APIKeyFile     `json:"apiKeyJson"`
}

func (a *API) apiKeyObject(k store.APIKey) APIKey {
	return APIKey{
		Metadata: Metadata{Name: k.Name, ID: k.ID, CreatedAt: timestamp(k.CreatedAt), CreatedBy: k.CreatedBy},
		Spec:     APIKeySpec{Description: k.Description, Owner: &Owner{Kind: k.OwnerKind, Name: k.OwnerName}, ExpiresAt: timestamp(k.ExpiresAt)},
		Status: APIKeyStatus{Locked: k.Locked, Hint: k.KeyHint, LastUsedAt: timestamp(k.LastUsedAt),
			Expired: !k.ExpiresAt.IsZero() && !a.now().Before(k.ExpiresAt)},
	}
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "apiKeys", func(req iam.ListRequest) (iam.ListPage[store.APIKey], error) {
		return a.IAM.ListAPIKeys(r.Context(), principal(r), req)
	}, a.apiKeyObject)
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var in APIKey
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	exp, err := parseTimestamp(in.Spec.ExpiresAt)
	if err != nil {
		a.fail(w, r, &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("spec.expiresAt %q is not an RFC 3339 time such as 2027-01-31T00:00:00Z", in.Spec.ExpiresAt)})
		return
	}
	input := iam.APIKeyInput{Name: in.Metadata.Name, Description: in.Spec.Description, ExpiresAt: exp}
	if in.Spec.Owner != nil {
		input.OwnerKind, input.OwnerName = in.Spec.Owner.Kind, in.Spec.Owner.Name
	}
	k, v, err := a.IAM.CreateAPIKey(r.Context(), principal(r), input)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	obj := a.apiKeyObject(k)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, APIKeyCreated{APIKey: obj, Key: v.Reveal(), Download: APIKeyDownload{
		Name: k.Name, Description: k.Description, Created: obj.Metadata.CreatedAt, Key: v.Reveal()},
		APIKeyJSON: APIKeyFile{Name: k.Name, Description: k.Description, CreatedAt: obj.Metadata.CreatedAt, APIKey: v.Reveal()}})
}

func (a *API) getAPIKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.IAM.GetAPIKey(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.apiKeyObject(k))
}

func (a *API) lockAPIKey(locked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, err := a.IAM.SetAPIKeyLocked(r.Context(), principal(r), r.PathValue("id"), locked)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, a.apiKeyObject(k))
	}
}

func (a *API) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	if err := a.IAM.DeleteAPIKey(r.Context(), principal(r), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- public API credentials ----

// Credential is a public API credential as the API shows it; its secret
// never appears after creation.
type Credential struct {
	Metadata Metadata         `json:"metadata"`
	Spec     CredentialSpec   `json:"spec"`
	Status   CredentialStatus `json:"status"`
}

// CredentialSpec is what a caller sets.
type CredentialSpec struct {
	Description string `json:"description"`
	Owner       *Owner `json:"owner,omitempty"`
}

// CredentialStatus is what the server reports.
type CredentialStatus struct {
	ClientID   string `json:"clientId"`
	SecretHint string `json:"secretHint"`
	LastUsedAt string `json:"lastUsedAt,omitempty"`
}

// CredentialCreated is the one answer that carries a client secret.
type CredentialCreated struct {
	Credential
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

func credentialObject(c store.ClientCredential) Credential {
	o := Credential{
		Metadata: Metadata{Name: c.Name, CreatedAt: timestamp(c.CreatedAt), CreatedBy: c.CreatedBy},
		Spec:     CredentialSpec{Description: c.Description},
		Status:   CredentialStatus{ClientID: c.ClientID, SecretHint: c.SecretHint, LastUsedAt: timestamp(c.LastUsedAt)},
	}
	if c.OwnerID != "" {
		o.Spec.Owner = &Owner{Kind: c.OwnerKind, Name: c.OwnerName}
	}
	return o
}

func (a *API) listCredentials(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "credentials", func(req iam.ListRequest) (iam.ListPage[store.ClientCredential], error) {
		return a.IAM.ListClientCredentials(r.Context(), principal(r), req)
	}, credentialObject)
}

func (a *API) getCredential(w http.ResponseWriter, r *http.Request) {
	c, err := a.IAM.GetClientCredential(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, credentialObject(c))
}

func (a *API) putCredential(createOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in Credential
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
		name, err := nameFor(r, in.Metadata.Name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		input := iam.CredentialInput{Name: name, Description: in.Spec.Description}
		if in.Spec.Owner != nil {
			input.OwnerKind, input.OwnerName = in.Spec.Owner.Kind, in.Spec.Owner.Name
		}
		c, v, err := a.IAM.PutClientCredential(r.Context(), principal(r), input, createOnly)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if v.IsZero() {
			writeJSON(w, http.StatusOK, credentialObject(c))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, CredentialCreated{Credential: credentialObject(c), ClientID: c.ClientID, ClientSecret: v.Reveal()})
	}
}

func (a *API) deleteCredential(w http.ResponseWriter, r *http.Request) {
	if err := a.IAM.DeleteClientCredential(r.Context(), principal(r), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- audit and identity of the caller ----

// AuditEvent is one audit record as the API shows it.
type AuditEvent struct {
	ID        string `json:"id"`
	Time      string `json:"time"`
	Actor     string `json:"actor"`
	Action    string `json:"action"`
	Object    string `json:"object"`
	Outcome   string `json:"outcome"`
	Source    string `json:"source"`
	RequestID string `json:"requestId"`
	Detail    string `json:"detail,omitempty"`
}

// auditParams are the query parameters GET /api/v1/audit understands; any
// other is refused, so a misspelt filter is not silently ignored (which
// would answer every event as if they matched).
var auditParams = map[string]bool{"since": true, "until": true, "actor": true, "action": true, "object": true, "limit": true, "continue": true}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name := range q {
		if !auditParams[name] {
			a.fail(w, r, &badRequest{http.StatusBadRequest, "BadRequest", "unknown query parameter " + strconv.Quote(name) + ": the audit filters by since, until, actor, action and object, and pages with limit and continue"})
			return
		}
	}
	var f store.AuditFilter
	var err error
	if f.Since, err = parseTimestamp(q.Get("since")); err != nil {
		a.fail(w, r, &badRequest{http.StatusBadRequest, "BadRequest", "since must be an RFC 3339 time such as 2026-11-22T10:00:00Z"})
		return
	}
	if f.Until, err = parseTimestamp(q.Get("until")); err != nil {
		a.fail(w, r, &badRequest{http.StatusBadRequest, "BadRequest", "until must be an RFC 3339 time such as 2026-11-22T10:00:00Z"})
		return
	}
	f.Actor, f.Action, f.Object = q.Get("actor"), q.Get("action"), q.Get("object")
	if l := q.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > iam.MaxAuditPage {
			a.fail(w, r, &badRequest{http.StatusBadRequest, "BadRequest", "limit must be a whole number from 1 to " + strconv.Itoa(iam.MaxAuditPage)})
			return
		}
	}
	pg, err := a.IAM.ListAuditPage(r.Context(), principal(r), f, q.Get("continue"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// Newest first, as the OpenAPI document says; a page ends with a
	// continue token when older events remain.
	out := make([]AuditEvent, 0, len(pg.Events))
	for _, e := range pg.Events {
		out = append(out, AuditEvent{ID: e.ID, Time: e.At.UTC().Format(time.RFC3339Nano), Actor: e.Actor, Action: e.Action,
			Object: e.Object, Outcome: e.Outcome, Source: e.Source, RequestID: e.RequestID, Detail: e.Detail})
	}
	// The metadata says how long events are kept (--audit-retention), so
	// a reader knows how far back the trail can go.
	meta := map[string]any{"retentionSeconds": int64(pg.Retention / time.Second)}
	if pg.Continue != "" {
		meta["continue"] = pg.Continue
	}
	writeJSON(w, http.StatusOK, map[string]any{"auditEvents": out, "metadata": meta})
}

// whoamiAnswer is whoami's body; its fields are in the order the map it
// replaced was encoded in (sorted keys), so the bytes did not change. A
// struct encodes without the map's sorting and boxing: whoami is the
// cheapest authenticated call, and its cost is the API's floor.
type whoamiAnswer struct {
	APIKeyID   string `json:"apiKeyId"`
	ClientID   string `json:"clientId"`
	ExpiresAt  string `json:"expiresAt"`
	InstanceID string `json:"instanceId"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Role       string `json:"role"`
}

// whoami tells the caller who its token says it is.
func (a *API) whoami(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	buf := wire.AnswerBuffer()
	defer wire.PutAnswerBuffer(buf)
	buf.Grow(256) // kept by the pool: the answer is appended into its spare room
	if b, ok := appendWhoami(buf.AvailableBuffer(), &p); ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
		return
	}
	writeJSON(w, http.StatusOK, &whoamiAnswer{APIKeyID: p.KeyID, ClientID: p.ClientID, ExpiresAt: timestamp(p.ExpiresAt),
		InstanceID: p.InstanceID, Kind: p.SubjectKind, Name: p.SubjectName, Role: p.Role})
}

// appendWhoami appends whoami's answer as writeJSON would encode it, when
// every string in it is printable ASCII that JSON writes as it is (ids,
// roles and nearly every name); ok is false otherwise and the caller
// encodes the struct. Encoding it by reflection was the answer's largest
// cost and allocated twice (TestWhoamiAnswerEncodedAlike).
func appendWhoami(b []byte, p *iam.Principal) ([]byte, bool) {
	for _, f := range [...]struct {
		key, value string
	}{{`{"apiKeyId":"`, p.KeyID}, {`","clientId":"`, p.ClientID}} {
		if !plainJSONString(f.value) {
			return nil, false
		}
		b = append(append(b, f.key...), f.value...)
	}
	b = append(b, `","expiresAt":"`...)
	if !p.ExpiresAt.IsZero() {
		b = p.ExpiresAt.UTC().Truncate(time.Second).AppendFormat(b, "2006-01-02T15:04:05Z")
	}
	for _, f := range [...]struct {
		key, value string
	}{{`","instanceId":"`, p.InstanceID}, {`","kind":"`, p.SubjectKind}, {`","name":"`, p.SubjectName}, {`","role":"`, p.Role}} {
		if !plainJSONString(f.value) {
			return nil, false
		}
		b = append(append(b, f.key...), f.value...)
	}
	return append(b, "\"}\n"...), true
}

// plainJSONString reports whether encoding/json writes s between its
// quotes byte for byte: printable ASCII without '"' or '\\' (HTML
// characters are not escaped in answers).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
