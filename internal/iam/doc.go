// Package iam owns identity and access: instances, users and service IDs,
// roles, API keys and client credentials (their formats, hashing and life
// cycle), the token service (App Connect exchange and OAuth 2.0 grants,
// JWT signing and verification), the per-request authentication check, and
// the audit trail of everything it decides. It never stores a key, secret
// or password in clear text and never puts one in an error or audit record;
// it knows nothing about HTTP routing (the api package calls it).
package iam
