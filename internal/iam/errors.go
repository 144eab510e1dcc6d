package iam

import (
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/internal/store"
)

// Kind classifies an Error for the API layer, which maps it to a status.
type Kind int

const (
	KindInvalid         Kind = iota + 1 // 400: the request is malformed or breaks a rule
	KindUnauthorized                    // 401: credentials missing or wrong
	KindForbidden                       // 403: authenticated, but not allowed
	KindNotFound                        // 404
	KindConflict                        // 409
	KindTooManyRequests                 // 429: over a rate limit
)

// Error separates what a client may see (Msg) from what only operators
// should (Err, logged but never sent), so internal detail cannot leak into
// a response by accident.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return &Error{Kind: KindInvalid, Msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &Error{Kind: KindNotFound, Msg: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &Error{Kind: KindConflict, Msg: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &Error{Kind: KindForbidden, Msg: fmt.Sprintf(format, args...)}
}

// ErrBadCredentials is the one answer to every failed token request: it
// does not say which part was wrong.
var ErrBadCredentials = &Error{Kind: KindUnauthorized, Msg: "the credentials are not valid"}

// KindOf returns the kind of err, or 0 when it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Invalidf, NotFoundf, Conflictf and Forbiddenf build client-safe errors
// for other domain packages (configurations, BAR files, runtimes), so the
// API maps every domain's errors in one place.
func Invalidf(format string, args ...any) error   { return invalid(format, args...) }
func NotFoundf(format string, args ...any) error  { return notFound(format, args...) }
func Conflictf(format string, args ...any) error  { return conflict(format, args...) }
func Forbiddenf(format string, args ...any) error { return forbidden(format, args...) }

// TooManyRequestsf builds the refusal of a request over a rate limit.
func TooManyRequestsf(format string, args ...any) error {
	return &Error{Kind: KindTooManyRequests, Msg: fmt.Sprintf(format, args...)}
}

// StoreErr maps store.ErrNotFound and store.ErrConflict to client-safe
// errors about what.
func StoreErr(err error, what string) error { return storeErr(err, what) }

// Unavailable reports whether err came from the store being out of reach
// (store.Unavailable), for the wires that may not import the store: they
// answer it with 503 and Retry-After, not as a server error.
func Unavailable(err error) bool { return store.Unavailable(err) }
