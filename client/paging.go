package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// PageSize is how many objects the client asks a list for at a time
// unless Options.PageSize says otherwise (the server takes at most 1000);
// it follows metadata.continue from page to page until the list ends, so
// callers get whole lists without either side holding one answer of
// unbounded size.
const PageSize = 1000

// listAll reads the list at path (with the filters in q) page by page,
// following metadata.continue. max > 0 stops once that many objects are
// read. A server that does not page answers everything at once, with no
// token, and that is the end of it.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values, key string, max int) ([]T, error) {
	out := []T{}
	query := url.Values{}
	for k, v := range q {
		query[k] = v
	}
	for {
		n := c.page
		if max > 0 {
			n = min(n, max-len(out))
		}
		query.Set("limit", strconv.Itoa(n))
		var page map[string]json.RawMessage
		if err := c.Do(ctx, http.MethodGet, path, query, nil, &page); err != nil {
			return nil, err
		}
		if raw, ok := page[key]; ok {
			var items []T
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("decode the %s of GET %s: %w", key, path, err)
			}
			out = append(out, items...)
		}
		var md struct {
			Continue string `json:"continue"`
		}
		if raw, ok := page["metadata"]; ok {
			if err := json.Unmarshal(raw, &md); err != nil {
				return nil, fmt.Errorf("decode the metadata of GET %s: %w", path, err)
			}
		}
		if md.Continue == "" || (max > 0 && len(out) >= max) {
			return out, nil
		}
		query.Set("continue", md.Continue)
	}
}
