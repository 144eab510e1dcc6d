package store

// IAM is the identity part of the store (instances, identities, API keys,
// client credentials, signing keys, audit).
type IAM interface{}
