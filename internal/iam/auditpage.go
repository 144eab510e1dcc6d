package iam

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/store"
)

// AuditPage is one page of the audit trail, newest first. Continue, when
// set, is the opaque token that asks for the next (older) page with the
// same filter.
type AuditPage struct {
	Events   []store.AuditEvent
	Continue string
	// Retention is how long events are kept (0: for ever): older ones
	// are deleted, so the trail begins no earlier.
	Retention time.Duration
}

// Audit page sizes of ListAuditPage.
const (
	DefaultAuditPage = 1000
	MaxAuditPage     = 10000
)

// ListAuditPage reads one page of the instance's audit (admins): at most
// f.Limit events (DefaultAuditPage when 0) older than the position cont
// names. Pages are keyset-based (time, then id), so events recorded while
// a reader pages never shift or repeat what it sees. A token from another
// filter or instance, or one that does not decode, is refused (400): it
// would otherwise silently list the wrong events.
func (s *Service) ListAuditPage(ctx context.Context, p Principal, f store.AuditFilter, cont string) (AuditPage, error) {
	if !p.IsAdmin() {
		return AuditPage{}, forbidden("only admins read the audit log")
	}
	f.InstanceID = p.InstanceID
	if f.Limit <= 0 {
		f.Limit = DefaultAuditPage
	}
	if f.Limit > MaxAuditPage {
		return AuditPage{}, invalid("limit must be a whole number from 1 to %d", MaxAuditPage)
	}
	if cont != "" {
		c, ok := decodeAuditCursor(cont, auditFingerprint(f))
		if !ok {
			return AuditPage{}, invalid("continue is not a token this audit query gave out: repeat the query without it, with the same filters as the page that gave it")
		}
		f.Below = c
	}
	want := f.Limit
	f.Limit++ // one more says whether another page follows
	evs, err := s.Store.ListAuditEvents(ctx, f)
	if err != nil {
		return AuditPage{}, err
	}
	pg := AuditPage{Events: evs, Retention: s.AuditRetention}
	if len(evs) > want {
		pg.Events = evs[:want]
		last := pg.Events[want-1]
		pg.Continue = encodeAuditCursor(store.AuditCursor{At: last.At, ID: last.ID}, auditFingerprint(f))
	}
	return pg, nil
}

// AuditContinue is the continue token of the page after ev, for readers
// that filter further and stop inside a page (the dashboard's action
// filter).
func (s *Service) AuditContinue(f store.AuditFilter, ev store.AuditEvent) string {
	if f.InstanceID == "" {
		f.InstanceID = ev.InstanceID
	}
	return encodeAuditCursor(store.AuditCursor{At: ev.At, ID: ev.ID}, auditFingerprint(f))
}

// auditToken is what a continue token holds: the last event's position
// and a fingerprint of the query it belongs to.
type auditToken struct {
	At     int64  `json:"t"`
	ID     string `json:"i"`
	Filter string `json:"f"`
}

// auditFingerprint names the query a token belongs to (not its limit,
// which may change from page to page).
func auditFingerprint(f store.AuditFilter) string {
	h := sha256.New()
	for _, part := range []string{f.InstanceID, f.Actor, f.Action, f.Object, strconv.FormatInt(f.Since.UnixMilli(), 10), strconv.FormatInt(f.Until.UnixMilli(), 10)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func encodeAuditCursor(c store.AuditCursor, fingerprint string) string {
	b, _ := json.Marshal(auditToken{At: c.At.UnixMilli(), ID: c.ID, Filter: fingerprint})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAuditCursor(tok, fingerprint string) (store.AuditCursor, bool) {
	if len(tok) > 512 {
		return store.AuditCursor{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return store.AuditCursor{}, false
	}
	var t auditToken
	if json.Unmarshal(b, &t) != nil || t.ID == "" || len(t.ID) > 64 || t.At <= 0 || t.Filter != fingerprint {
		return store.AuditCursor{}, false
	}
	return store.AuditCursor{At: time.UnixMilli(t.At).UTC(), ID: t.ID}, true
}
