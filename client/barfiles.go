package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// BARFile is an uploaded BAR file (an integration project archive). URL is
// what an integration runtime's spec.barURL names to run it.
type BARFile struct {
	Metadata   Metadata      `json:"metadata"`
	Name       string        `json:"name"`
	URL        string        `json:"url"`
	Size       int64         `json:"size"`
	SHA256     string        `json:"sha256"`
	Project    string        `json:"project"`
	Version    string        `json:"version,omitempty"`
	Flows      []BARFlow     `json:"flows"`
	Endpoints  []BAREndpoint `json:"endpoints"`
	UploadedAt time.Time     `json:"uploadedAt"`
	UploadedBy string        `json:"uploadedBy"`
}

// BARFlow is one flow of a BAR file.
type BARFlow struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	File        string     `json:"file"`
	Trigger     BARTrigger `json:"trigger"`
	Timeout     string     `json:"timeout,omitempty"`
}

// BARTrigger is what starts a flow: Type "http" (Method, Path), "schedule"
// (Cron, TimeZone) or "call" (other flows call it).
type BARTrigger struct {
	Type     string `json:"type"`
	Method   string `json:"method,omitempty"`
	Path     string `json:"path,omitempty"`
	Cron     string `json:"cron,omitempty"`
	TimeZone string `json:"timeZone,omitempty"`
}

// String is the trigger in a few words, e.g. "POST /orders".
func (t BARTrigger) String() string {
	switch t.Type {
	case "http":
		return t.Method + " " + t.Path
	case "schedule":
		if t.TimeZone != "" {
			return fmt.Sprintf("schedule %q (%s)", t.Cron, t.TimeZone)
		}
		return fmt.Sprintf("schedule %q", t.Cron)
	}
	return t.Type
}

// BAREndpoint is an HTTP route a BAR's flows serve; a runtime prefixes it
// with its own base URL.
type BAREndpoint struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Flow   string `json:"flow"`
}

func barPath(name string) string { return "/api/v1/bar-files/" + url.PathEscape(name) }

// PutBARFile calls PUT /api/v1/bar-files/{name}: it uploads a BAR's bytes
// from content, streamed, creating the BAR file or replacing its content.
// size is the number of bytes content holds (-1 when unknown: the upload is
// then chunked and the server cannot refuse an oversized file up front).
// progress, when not nil, is told how the upload advances. The server
// validates the BAR before storing it; an invalid one is refused with 422
// and the previous content of that name stays. A content that is an
// io.Seeker can be sent again when the token is refused mid-way.
func (c *Client) PutBARFile(ctx context.Context, name string, content io.Reader, size int64, progress Progress) (BARFile, error) {
	if progress != nil {
		progress(0, size)
	}
	resp, err := c.doRaw(ctx, rawRequest{method: http.MethodPut, path: barPath(name), body: content, size: size,
		contentType: "application/octet-stream", accept: "application/json", progress: progress})
	if err != nil {
		return BARFile{}, err
	}
	defer resp.Body.Close()
	var f BARFile
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		return BARFile{}, fmt.Errorf("PUT %s: unable to decode the answer: %w", barPath(name), err)
	}
	return f, nil
}

// DownloadBARFile calls GET /api/v1/bar-files/{name}/content and streams
// the BAR's bytes to w, returning how many were written. The bytes are
// checked against the server's SHA-256 of the file as they pass; a
// download cut short or changed on the way is an error (w then holds what
// arrived, which the caller should discard). progress, when not nil, is
// told how the download advances.
func (c *Client) DownloadBARFile(ctx context.Context, name string, w io.Writer, progress Progress) (int64, error) {
	resp, err := c.doRaw(ctx, rawRequest{method: http.MethodGet, path: barPath(name) + "/content", size: -1,
		accept: "application/octet-stream"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := copyDownload(resp, w, progress)
	if err != nil {
		return n, fmt.Errorf("download of BAR file %s: %w", name, err)
	}
	return n, nil
}

// ListBARFiles calls GET /api/v1/bar-files.
func (c *Client) ListBARFiles(ctx context.Context) ([]BARFile, error) {
	return listAll[BARFile](ctx, c, "/api/v1/bar-files", nil, "barFiles", 0)
}

// GetBARFile calls GET /api/v1/bar-files/{name}: the BAR file's metadata.
func (c *Client) GetBARFile(ctx context.Context, name string) (BARFile, error) {
	var f BARFile
	err := c.Do(ctx, http.MethodGet, barPath(name), nil, nil, &f)
	return f, err
}

// DeleteBARFile calls DELETE /api/v1/bar-files/{name}. One that integration
// runtimes name in spec.barURL is refused with 409 naming them, unless
// force.
func (c *Client) DeleteBARFile(ctx context.Context, name string, force bool) error {
	return c.Do(ctx, http.MethodDelete, barPath(name), forceQuery(force), nil, nil)
}
