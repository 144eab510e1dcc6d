package apic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/store"
)

// How long a create's answer is replayed. A client that names the request
// with Idempotency-Key gets a day; one that does not (Infisical's client,
// which repeats a POST after a dropped connection or a 5xx) gets its
// answer again when it repeats the same body to the same path within ten
// minutes — a second credential would be a leaked one, since the client
// only ever learns of one.
const (
	keyedReplay    = 24 * time.Hour
	implicitReplay = 10 * time.Minute
	maxKeyLength   = 255
)

// HeaderReplayed marks an answer that is a remembered one.
const HeaderReplayed = "Idempotent-Replayed"

// idempotent runs a create at most once per caller and request: a repeat
// gets the first answer (status and body, client secret included — the
// body is kept sealed under the keyring). The answer of a create that
// committed is never an error: failing to remember it is logged only.
func (a *Adapter) idempotent(w http.ResponseWriter, r *http.Request, create func(createBody) (int, any, error)) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "content type "+ct+" is not JSON: send application/json")
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the body is larger than 1 MiB")
		return
	}
	var b createBody
	if err := json.Unmarshal(raw, &b); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not a JSON object with string members name, title, summary: "+err.Error())
		return
	}
	p := principal(r)
	sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(bytes.TrimSpace(raw))))
	reqHash := hex.EncodeToString(sum[:])
	key, window := r.Header.Get("Idempotency-Key"), keyedReplay
	switch {
	case len(key) > maxKeyLength:
		writeError(w, http.StatusBadRequest, "Idempotency-Key is longer than 255 characters")
		return
	case key == "":
		key, window = "implicit:"+reqHash, implicitReplay
	}
	scope := p.SubjectID
	if a.replay(w, r, scope, key, reqHash) {
		return
	}
	status, v, err := create(b)
	if err != nil {
		// A twin of this request may have won the race for the name.
		if iam.KindOf(err) == iam.KindConflict && a.replay(w, r, scope, key, reqHash) {
			return
		}
		a.fail(w, r, err)
		return
	}
	body, err := json.Marshal(v)
	if err == nil {
		a.remember(r, store.IdempotentAnswer{InstanceID: p.InstanceID, Scope: scope, Key: key, RequestHash: reqHash,
			Status: status, ExpiresAt: a.now().Add(window)}, body)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, v)
}

func aad(instanceID, scope, key string) []byte {
	return []byte("apic-idempotency/" + instanceID + "/" + scope + "/" + key)
}

func (a *Adapter) remember(r *http.Request, ans store.IdempotentAnswer, body []byte) {
	ctx := r.Context()
	sealed, err := a.Keyring.Seal(body, aad(ans.InstanceID, ans.Scope, ans.Key))
	if err == nil {
		ans.SealedBody = sealed
		_ = a.Store.DeleteExpiredIdempotentAnswers(ctx, a.now())
		err = a.Store.PutIdempotentAnswer(ctx, ans)
	}
	if err != nil {
		a.Log.WarnContext(r.Context(), "unable to remember a create's answer; a repeat of it would create again",
			"request_id", obs.RequestID(ctx), "err", err)
	}
}

// replay answers with a remembered answer, if there is one for key.
func (a *Adapter) replay(w http.ResponseWriter, r *http.Request, scope, key, reqHash string) bool {
	p := principal(r)
	ans, err := a.Store.GetIdempotentAnswer(r.Context(), p.InstanceID, scope, key, a.now())
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		a.fail(w, r, err)
		return true
	}
	if ans.RequestHash != reqHash {
		writeError(w, http.StatusUnprocessableEntity, "Idempotency-Key "+key+" was used for another request: use a new key for a new request")
		return true
	}
	body, err := a.Keyring.Open(ans.SealedBody, aad(p.InstanceID, scope, key))
	if err != nil {
		a.fail(w, r, err)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(HeaderReplayed, "true")
	w.WriteHeader(ans.Status)
	_, _ = w.Write(append(body, '\n'))
	return true
}
