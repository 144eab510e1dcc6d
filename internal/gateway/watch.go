package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Watcher keeps a Gateway in step with the control plane: it long-polls
// URL with the tag of the state it has, and applies every new state whole.
// Each answer is a full state, so after a gap (a dropped connection, a
// control plane restart) the next answer is a full resync. While the
// control plane is unreachable the gateway keeps enforcing the last state.
type Watcher struct {
	URL     string                 // …/internal/v1/runtimes/{uid}/generations/{gen}/gateway
	Token   func() (string, error) // the runtime's bundle token
	Gateway *Gateway
	Client  *http.Client // nil: a client with a 60 s timeout per poll
	Log     *slog.Logger
	// After waits between retries (nil: time.After); tests make it instant.
	After func(time.Duration) <-chan time.Time

	tag string
}

// maxState bounds an answer: a state is client ids and hashes, not data.
const maxState = 64 << 20

// Sync fetches and applies the current state once.
func (w *Watcher) Sync(ctx context.Context) error { return w.poll(ctx, false) }

// Run follows the control plane until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	after := w.After
	if after == nil {
		after = time.After
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := w.poll(ctx, true); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.Log.Warn("gateway state watch failed; enforcing the last state", "err", err, "revision", w.tag, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-after(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

func (w *Watcher) poll(ctx context.Context, wait bool) error {
	u := w.URL
	if wait && w.tag != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "since=" + url.QueryEscape(w.tag)
	}
	tok, err := w.Token()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("the control plane answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var ans struct {
		Tag   string `json:"tag"`
		State State  `json:"state"`
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxState))
	if err := dec.Decode(&ans); err != nil {
		return fmt.Errorf("the gateway state does not decode: %w", err)
	}
	if ans.Tag == "" {
		return errors.New("the gateway state has no tag")
	}
	if err := w.Gateway.Apply(ans.State); err != nil {
		return err
	}
	if ans.Tag != w.tag {
		w.Log.Info("gateway state applied", "tag", ans.Tag, "apis", len(ans.State.APIs), "apps", len(ans.State.Apps), "credentials", len(ans.State.Credentials))
	}
	w.tag = ans.Tag
	return nil
}
