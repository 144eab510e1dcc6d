package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/sluice-dev/sluice/internal/iam"
)

var (
	policyHeader = iam.PolicyHeader
	stateHeader  = iam.StateHeader
	retryAfter   = iam.RetryAfter
)

// allow counts the request against the rate limits of its client and
// instance, sets the RateLimit-Policy and RateLimit headers, and answers
// 429 with Retry-After itself when the request is over a limit.
func (a *API) allow(w http.ResponseWriter, r *http.Request, clientID, instanceID string) bool {
	if a.RateLimit == nil {
		return true
	}
	ok, quotas := a.RateLimit.Allow(clientID, instanceID)
	if len(quotas) == 0 {
		return true
	}
	w.Header().Set("RateLimit-Policy", policyHeader(quotas))
	w.Header().Set("RateLimit", stateHeader(quotas))
	if ok {
		return true
	}
	retry := retryAfter(quotas)
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	writeError(w, r, http.StatusTooManyRequests, "TooManyRequests",
		fmt.Sprintf("rate limit exceeded (%s); retry in %d s", policyHeader(quotas), retry))
	return false
}
