package api

import (
	"time"
)

// Metadata is the metadata of every API object. Read-only fields are
// accepted on input and ignored, so a GET can be edited and PUT back whole.
type Metadata struct {
	Name      string `json:"name"`
	ID        string `json:"id,omitempty"`
	CreatedAt string `json:"createdAt,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}

// timestamp formats times the way App Connect clients parse them: whole
// seconds, UTC, "Z".
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z")
}

// parseTimestamp reads an RFC 3339 time; "" is the zero time.
func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

// Owner names the identity an API key or credential belongs to.
type Owner struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}
