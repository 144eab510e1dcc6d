// Package revocation measures how long a revocation takes to reach a
// runtime's replicas: a credential deleted, or a subscription removed,
// until both replicas of a runtime refuse it. It is a benchmark only
// (go test ./bench/revocation -run '^$' -bench . -benchtime 40x); see
// bench/README.md.
package revocation
