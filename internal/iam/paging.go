package iam

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/sluice-dev/sluice/internal/store"
)

// Page sizes of the lists of the API other than the audit (which keeps
// its own, DefaultAuditPage and MaxAuditPage).
const (
	// DefaultListPage is the page a list answers when the request gives
	// no limit; the API reads a list asked for without a limit in pages
	// of this size and writes them one after another.
	DefaultListPage = 500
	// MaxListPage is the largest limit a list takes.
	MaxListPage = 1000
)

// ListRequest asks a list for one page: at most Limit objects
// (DefaultListPage when 0) after the position the Continue token of the
// page before names ("" for the first page).
type ListRequest struct {
	Limit    int
	Continue string
	// Offset skips that many objects more (API Connect's offset, which
	// its clients send instead of a token).
	Offset int
}

// ListPage is one page of a list: its items, and the token of the next
// page ("" after the last).
type ListPage[T any] struct {
	Items    []T
	Continue string
}

// LimitMessage is the refusal of a limit out of range, shared by the
// API's parameter parsing and the services.
var LimitMessage = "limit must be a whole number from 1 to " + strconv.Itoa(MaxListPage)

// PageOf reads one page of the list scope names (the list and every
// filter that makes it: instance, parent, owner…) with fetch, which runs
// the store query. It asks for one object more than the page holds to
// know whether another page follows, and refuses (400) a limit out of
// range and a token that this list did not give out — one of another
// list, filter or instance would otherwise start somewhere meaningless.
func PageOf[T store.Keyed](req ListRequest, scope []string, fetch func(store.Page) ([]T, error)) (ListPage[T], error) {
	want := req.Limit
	if want == 0 {
		want = DefaultListPage
	}
	if want < 1 || want > MaxListPage {
		return ListPage[T]{}, invalid("%s", LimitMessage)
	}
	if req.Offset < 0 {
		return ListPage[T]{}, invalid("offset must be a whole number from 0")
	}
	fp := listFingerprint(scope)
	pg := store.Page{Limit: want + 1, Offset: req.Offset}
	if req.Continue != "" {
		after, ok := decodeListToken(req.Continue, fp)
		if !ok {
			return ListPage[T]{}, badContinue()
		}
		pg.After = after
	}
	items, err := fetch(pg)
	if errors.Is(err, store.ErrBadPageKey) {
		return ListPage[T]{}, badContinue()
	}
	if err != nil {
		return ListPage[T]{}, err
	}
	out := ListPage[T]{Items: items}
	if len(items) > want {
		out.Items = items[:want]
		out.Continue = encodeListToken(items[want-1].PageKey(), fp)
	}
	return out, nil
}

// PageMap is PageOf for a service that answers something else than the
// store's records: conv turns each record of the page into it.
func PageMap[S store.Keyed, T any](req ListRequest, scope []string, fetch func(store.Page) ([]S, error), conv func(S) (T, error)) (ListPage[T], error) {
	pg, err := PageOf(req, scope, fetch)
	if err != nil {
		return ListPage[T]{}, err
	}
	out := ListPage[T]{Items: make([]T, 0, len(pg.Items)), Continue: pg.Continue}
	for _, it := range pg.Items {
		v, err := conv(it)
		if err != nil {
			return ListPage[T]{}, err
		}
		out.Items = append(out.Items, v)
	}
	return out, nil
}

func badContinue() error {
	return invalid("continue is not a token this list gave out: repeat the request without it, with the same path and filters as the page that gave it")
}

// listToken is what a continue token holds: the key of the last object of
// its page and a fingerprint of the list it belongs to (the audit's
// tokens are made the same way, see auditToken).
type listToken struct {
	Key    []string `json:"k"`
	Filter string   `json:"f"`
}

func listFingerprint(scope []string) string {
	h := sha256.New()
	for _, part := range scope {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func encodeListToken(key []string, fingerprint string) string {
	b, _ := json.Marshal(listToken{Key: key, Filter: fingerprint})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeListToken(tok, fingerprint string) ([]string, bool) {
	if len(tok) > 1024 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, false
	}
	var t listToken
	if json.Unmarshal(b, &t) != nil || len(t.Key) == 0 || t.Filter != fingerprint {
		return nil, false
	}
	return t.Key, true
}

// All reads every page of a list, for callers that need it whole (and
// hold it whole: never an answer whose size is the client's to choose).
func All[T any](list func(ListRequest) (ListPage[T], error)) ([]T, error) {
	var out []T
	err := Each(list, func(it T) { out = append(out, it) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Each calls fn on every item of a list, reading it a page at a time, so
// that no more than a page is held.
func Each[T any](list func(ListRequest) (ListPage[T], error), fn func(T)) error {
	req := ListRequest{Limit: MaxListPage}
	for {
		pg, err := list(req)
		if err != nil {
			return err
		}
		for _, it := range pg.Items {
			fn(it)
		}
		if pg.Continue == "" {
			return nil
		}
		req.Continue = pg.Continue
	}
}
