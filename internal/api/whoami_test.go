package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
)

// TestWhoamiAnswerEncodedAlike holds appendWhoami to the bytes writeJSON
// gives for the same answer, and to giving way whenever a string needs
// escaping.
func TestWhoamiAnswerEncodedAlike(t *testing.T) {
	exp := time.Date(2026, 12, 3, 14, 5, 6, 700_000_000, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name  string
		p     iam.Principal
		plain bool
	}{
		{"api key", iam.Principal{KeyID: "k-1", ClientID: "c-1", ExpiresAt: exp, InstanceID: "i-1", SubjectKind: "user", SubjectName: "ada<&>", Role: "admin"}, true},
		{"no key, no expiry", iam.Principal{ClientID: "c-1", InstanceID: "i-1", SubjectKind: "serviceId", SubjectName: "ci", Role: "viewer"}, true},
		{"quote", iam.Principal{ClientID: "c-1", SubjectName: `a"b`, Role: "viewer"}, false},
		{"backslash", iam.Principal{ClientID: `c\1`, Role: "viewer"}, false},
		{"control", iam.Principal{ClientID: "c-1", SubjectName: "a\nb", Role: "viewer"}, false},
		{"non-ASCII", iam.Principal{ClientID: "c-1", SubjectName: "Zoë\u2028", Role: "viewer"}, false},
		{"invalid UTF-8", iam.Principal{ClientID: "c-1", InstanceID: "\xff", Role: "viewer"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(&whoamiAnswer{APIKeyID: p.KeyID, ClientID: p.ClientID, ExpiresAt: timestamp(p.ExpiresAt),
				InstanceID: p.InstanceID, Kind: p.SubjectKind, Name: p.SubjectName, Role: p.Role}); err != nil {
				t.Fatal(err)
			}
			got, ok := appendWhoami(nil, &p)
			if ok != tc.plain {
				t.Fatalf("ok = %v, want %v (%s)", ok, tc.plain, got)
			}
			if ok && string(got) != want.String() {
				t.Errorf("got  %s\nwant %s", got, want.String())
			}
		})
	}
}
