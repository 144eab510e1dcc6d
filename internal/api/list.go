package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/wire"
)

// listRequest reads a list's ?limit and ?continue. paged reports that the
// caller asked for one page (with either); without both it gets the whole
// list, as App Connect's scripts expect.
func listRequest(r *http.Request) (req iam.ListRequest, paged bool, err error) {
	q := r.URL.Query()
	if l, ok := q["limit"]; ok {
		n, perr := strconv.Atoi(l[0])
		if perr != nil || len(l) > 1 || n < 1 || n > iam.MaxListPage {
			return req, false, &badRequest{http.StatusBadRequest, "BadRequest", iam.LimitMessage}
		}
		req.Limit, paged = n, true
	}
	if c, ok := q["continue"]; ok {
		if len(c) > 1 || c[0] == "" {
			return req, false, &badRequest{http.StatusBadRequest, "BadRequest", "continue must be given once, with the token of the page before (metadata.continue)"}
		}
		req.Continue, paged = c[0], true
	}
	return req, paged, nil
}

// answerList answers a list under key (App Connect's list bodies are keyed
// by the plural), each item turned into its API object by object. list
// reads one page. Asked for a page (?limit, ?continue), it answers that
// page with metadata.continue when more follow. Asked for no page, it
// answers every item in the same shape as one page without metadata, and
// writes it page by page as it reads them, so what the control plane holds
// is one page whatever the length of the list. Errors of the first page
// are answered as errors; a later one can only cut the answer short,
// which the client sees as a broken body, never as a shorter list.
func answerList[T, O any](a *API, w http.ResponseWriter, r *http.Request, key string, list func(iam.ListRequest) (iam.ListPage[T], error), object func(T) O) {
	req, paged, err := listRequest(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pg, err := list(req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// A pooled buffer: growing a fresh one to the size of a page (10 KB
	// for 10 runtimes) for each answer was a tenth of a list's CPU.
	buf := wire.AnswerBuffer()
	defer wire.PutAnswerBuffer(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // as writeJSON
	buf.WriteString(`{"` + key + `":[`)
	first := true
	streamed := false // pages were written before the last one
	for {
		for _, it := range pg.Items {
			if !first {
				buf.WriteByte(',')
			}
			first = false
			o := object(it)
			if raw, ok := any(o).(json.RawMessage); ok {
				// Encoded already, by this server: written as it is
				// (Encode would check and copy it again).
				buf.Write(raw)
				continue
			}
			if err := enc.Encode(o); err != nil {
				a.cutShort(r, err)
			}
			buf.Truncate(buf.Len() - 1) // Encode's newline
		}
		if paged || pg.Continue == "" {
			break
		}
		if !streamed {
			w.WriteHeader(http.StatusOK)
			streamed = true
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return // the client went away
		}
		buf.Reset()
		if pg, err = list(iam.ListRequest{Continue: pg.Continue}); err != nil {
			a.cutShort(r, err)
		}
	}
	buf.WriteByte(']')
	if paged && pg.Continue != "" {
		buf.WriteString(`,"metadata":{"continue":`)
		_ = enc.Encode(pg.Continue)
		buf.Truncate(buf.Len() - 1)
		buf.WriteByte('}')
	}
	buf.WriteString("}\n")
	if !streamed {
		// The whole answer is in buf: said with its length, it goes in
		// one piece rather than in chunks (net/http chunks what is over
		// 2 KB and of no declared length, a write more for the last chunk).
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.Write(buf.Bytes())
}

// cutShort ends an answer already under way: the connection is dropped,
// so the client cannot take what it got for the whole list.
func (a *API) cutShort(r *http.Request, err error) {
	if r.Context().Err() == nil {
		a.Log.ErrorContext(r.Context(), "list cut short", "request_id", obs.RequestID(r.Context()), "err", err)
	}
	panic(http.ErrAbortHandler)
}
