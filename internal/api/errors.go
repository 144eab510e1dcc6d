package api

import (
	"net/http"

	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/wire"
)

// errorBody is every error answer of the API. Field order matters: App
// Connect scripts grep the body for `"Internal error","code":404`, so
// "error" comes first with that fixed text, then the numeric code. Reason
// is a short machine-readable word; message says, for a person, what was
// wrong. No internal detail (driver errors, stack traces) goes in here.
type errorBody struct {
	Error     string   `json:"error"`
	Code      int      `json:"code"`
	Reason    string   `json:"reason"`
	Message   string   `json:"message"`
	Details   []string `json:"details,omitempty"`
	RequestID string   `json:"requestId,omitempty"`
}

func requestID(r *http.Request) string { return obs.RequestID(r.Context()) }

// errorTitle is the fixed first field of every error body (see errorBody).
const errorTitle = "Internal error"

func writeError(w http.ResponseWriter, r *http.Request, status int, reason, message string) {
	writeJSON(w, status, errorBody{
		Error: errorTitle, Code: status, Reason: reason, Message: message,
		RequestID: obs.RequestID(r.Context()),
	})
}

// writeJSON writes compact JSON (see wire.WriteJSON).
func writeJSON(w http.ResponseWriter, status int, v any) { wire.WriteJSON(w, status, v) }
