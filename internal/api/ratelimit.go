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

// Rate limits. Only authenticated traffic draws on the quota of a client
// and its instance: anyone can present someone else's client id, so a
// request that has not (yet) proved it is theirs counts against its
// source address instead (RateLimiter.PerSource).

// allow counts an authenticated request against the rate limits of its
// client and instance, sets the RateLimit-Policy and RateLimit headers,
// and answers 429 with Retry-After itself when the request is over a limit.
func (a *API) allow(w http.ResponseWriter, r *http.Request, clientID, instanceID string) bool {
	if a.RateLimit == nil {
		return true
	}
	ok, quotas := a.RateLimit.Allow(clientID, instanceID)
	setQuotaHeaders(w, quotas)
	if ok {
		return true
	}
	writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", overLimit(w, quotas))
	return false
}

func setQuotaHeaders(w http.ResponseWriter, quotas []iam.Quota) {
	if len(quotas) == 0 {
		return
	}
	// Header.Set with these names, without canonicalizing them on every
	// answer (a copy each, as "RateLimit" is not in canonical form).
	// Both values in one array: one allocation, not two (each slice is
	// capped, so an Add to one never writes into the other).
	h := w.Header()
	vs := &[2]string{policyHeader(quotas), stateHeader(quotas)}
	h[headerRateLimitPolicy] = vs[0:1:1]
	h[headerRateLimit] = vs[1:2:2]
}

var (
	headerRateLimitPolicy = http.CanonicalHeaderKey("RateLimit-Policy")
	headerRateLimit       = http.CanonicalHeaderKey("RateLimit")
)

// overLimit sets Retry-After and says which limit was passed.
func overLimit(w http.ResponseWriter, quotas []iam.Quota) string {
	retry := retryAfter(quotas)
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	return fmt.Sprintf("rate limit exceeded (%s); retry in %d s", policyHeader(quotas), retry)
}

// sourceExhausted reports, with the headers set, whether the caller's
// address has used up its quota of unauthenticated and failed attempts;
// the caller answers 429 with the message.
func (a *API) sourceExhausted(w http.ResponseWriter, r *http.Request) (string, bool) {
	if a.RateLimit == nil {
		return "", false
	}
	over, quotas := a.RateLimit.SourceExhausted(clientAddr(r))
	if !over {
		return "", false
	}
	setQuotaHeaders(w, quotas)
	return overLimit(w, quotas) + ": too many unauthenticated or failed requests from this address", true
}

// failed counts a failed or unauthenticated attempt against the caller's
// address; when it is over that quota it returns the 429 message.
func (a *API) failed(w http.ResponseWriter, r *http.Request) (string, bool) {
	if a.RateLimit == nil {
		return "", false
	}
	ok, quotas := a.RateLimit.FailSource(clientAddr(r))
	if ok {
		return "", false
	}
	setQuotaHeaders(w, quotas)
	return overLimit(w, quotas) + ": too many unauthenticated or failed requests from this address", true
}

// admit is the Admit hook of token requests: once the caller has
// authenticated, the token call counts against its client and instance.
func (a *API) admit(w http.ResponseWriter) func(clientID, instanceID string) error {
	return func(clientID, instanceID string) error {
		if a.RateLimit == nil {
			return nil
		}
		ok, quotas := a.RateLimit.Allow(clientID, instanceID)
		setQuotaHeaders(w, quotas)
		if ok {
			return nil
		}
		return iam.TooManyRequestsf("%s", overLimit(w, quotas))
	}
}
