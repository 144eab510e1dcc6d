package client

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Progress is told how a transfer advances: done bytes of total so far.
// total is -1 when the size is not known. It is called from the goroutine
// doing the transfer, once at the start and then after every read, so it
// should be quick.
type Progress func(done, total int64)

// rawRequest is a request whose body is not JSON or whose answer is not
// decoded: uploads, downloads and event streams.
type rawRequest struct {
	method, path string
	query        url.Values
	body         io.Reader // nil for none
	size         int64     // body size; -1 when unknown
	contentType  string
	accept       string
	progress     Progress
}

// streamClient returns the HTTP client for transfers and streams. Their
// length is bounded by the caller's context, not by the client's overall
// timeout, which would cut a large upload or a watch short.
func (c *Client) streamClient() *http.Client {
	h := *c.http
	h.Timeout = 0
	return &h
}

// countingReader counts what is read through it and reports progress.
type countingReader struct {
	r        io.Reader
	n, total int64
	progress Progress
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n += int64(n)
	if cr.progress != nil && n > 0 {
		cr.progress(cr.n, cr.total)
	}
	return n, err
}

// doRaw sends rr with a token and returns the 2xx answer, whose body the
// caller must close; any other answer is an *Error. A 401 is retried once
// with a new token when the body can be sent again: nothing of it was
// read yet, or it can seek back to its start.
func (c *Client) doRaw(ctx context.Context, rr rawRequest) (*http.Response, error) {
	hc := c.streamClient()
	var start int64
	seeker, canSeek := rr.body.(io.Seeker)
	if canSeek {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			canSeek = false
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.Token(ctx)
		if err != nil {
			return nil, err
		}
		u := *c.base
		u.Path = c.base.Path + rr.path
		u.RawQuery = rr.query.Encode()
		var body *countingReader
		var rd io.Reader
		if rr.body != nil {
			body = &countingReader{r: rr.body, total: rr.size, progress: rr.progress}
			// Hide the concrete type, so net/http neither guesses a
			// length nor closes the caller's reader.
			rd = struct{ io.Reader }{body}
		}
		req, err := http.NewRequestWithContext(ctx, rr.method, u.String(), rd)
		if err != nil {
			return nil, err
		}
		if rr.body != nil {
			req.ContentLength = rr.size
			if rr.size == 0 {
				req.Body = http.NoBody
			} else {
				// Ask before sending the body, so a refusal (401, 413,
				// 415) comes before the upload rather than after it.
				req.Header.Set("Expect", "100-continue")
			}
		}
		if rr.contentType != "" {
			req.Header.Set("Content-Type", rr.contentType)
		}
		if rr.accept != "" {
			req.Header.Set("Accept", rr.accept)
		}
		req.Header.Set("User-Agent", c.ua)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken.Reveal())
		req.Header.Set("X-IBM-Client-Id", c.creds.ClientID)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return resp, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		e := errorFromResponse(resp, b)
		if attempt == 0 && e.StatusCode == http.StatusUnauthorized {
			switch {
			case body == nil || body.n == 0:
			case canSeek:
				if _, err := seeker.Seek(start, io.SeekStart); err != nil {
					return nil, e
				}
			default:
				return nil, e
			}
			c.dropToken(tok)
			continue
		}
		return nil, e
	}
}

// copyDownload copies resp's body to w, reporting progress, and checks it
// against the answer's ETag when that is a quoted SHA-256, as the BAR
// content endpoint sends: a download that arrives changed is an error.
func copyDownload(resp *http.Response, w io.Writer, progress Progress) (int64, error) {
	var sum hash.Hash
	want := strings.Trim(resp.Header.Get("ETag"), `"`)
	if len(want) == 64 {
		if _, err := hex.DecodeString(want); err == nil {
			sum = sha256.New()
			w = io.MultiWriter(w, sum)
		}
	}
	total := resp.ContentLength
	if progress != nil {
		progress(0, total)
	}
	cr := &countingReader{r: resp.Body, total: total, progress: progress}
	n, err := io.Copy(w, cr)
	if err != nil {
		return n, err
	}
	if total >= 0 && n != total {
		return n, fmt.Errorf("the download ended after %d of %d bytes", n, total)
	}
	if sum != nil && hex.EncodeToString(sum.Sum(nil)) != want {
		return n, errors.New("the downloaded bytes do not match the server's SHA-256")
	}
	return n, nil
}

// sseEvent is one server-sent event.
type sseEvent struct {
	event, id, data string
}

// sseReader reads server-sent events (text/event-stream) from a body.
type sseReader struct {
	sc *bufio.Scanner
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &sseReader{sc: sc}
}

// next returns the next event with data, skipping comments (keep-alives)
// and empty events. It returns io.EOF when the stream ends cleanly.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if data != nil {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.event = value
		case "id":
			ev.id = value
		case "data":
			data = append(data, value)
		}
	}
	if err := s.sc.Err(); err != nil {
		return sseEvent{}, err
	}
	if data != nil {
		ev.data = strings.Join(data, "\n")
		return ev, nil
	}
	return sseEvent{}, io.EOF
}
