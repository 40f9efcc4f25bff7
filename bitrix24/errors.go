package bitrix24

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an error the portal reported in its envelope:
// {"error":"CODE","error_description":"…"}. The code, not the HTTP status, says what
// went wrong: Bitrix24 sends some errors with 200 and some successes with odd statuses.
type Error struct {
	Method      string // the REST method called; empty for the sentinels
	Code        string // "QUERY_LIMIT_EXCEEDED", "expired_token", "ACCESS_DENIED", …
	Description string // error_description; not meant for end users
	HTTPStatus  int    // 0 when unknown (a batch sub-command, a sentinel)
	// ResetAt is time.operating_reset_at of the answer, when given: the moment a
	// method blocked by OPERATION_TIME_LIMIT may be called again.
	ResetAt time.Time
}

// Error renders "bitrix24 imbot.message.add: QUERY_LIMIT_EXCEEDED: Too many requests (HTTP 503)".
func (e *Error) Error() string {
	b := errorPrefix(e.Method)
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.HTTPStatus != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrQueryLimitExceeded) matches whatever method and description the
// portal sent. Codes are compared case-insensitively: Bitrix24 spells OAuth codes in
// lower case (expired_token) and its own in upper case, and has not always been
// consistent about it.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t == nil || t.Code == "" {
		return false
	}
	return strings.EqualFold(e.Code, t.Code)
}

// Temporary reports whether the same call can succeed if retried later: the portal was
// over its rate limit or overloaded, or failed internally. A retry layer must still
// back off — OVERLOAD_LIMIT in particular is a manual block that hammering prolongs —
// and must only repeat calls that are safe to repeat.
func (e *Error) Temporary() bool {
	code := strings.ToUpper(e.Code)
	if temporaryCodes[code] {
		return true
	}
	// 429: imbot.v2's rate limit, whatever code it comes with.
	return (e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests) && !permanentCodes[code]
}

// Codes that mean "not now" rather than "never".
var temporaryCodes = map[string]bool{
	"QUERY_LIMIT_EXCEEDED":    true,
	"OVERLOAD_LIMIT":          true,
	"OPERATION_TIME_LIMIT":    true,
	"INTERNAL_SERVER_ERROR":   true,
	"ERROR_UNEXPECTED_ANSWER": true,
}

// Codes that a retry cannot fix even when they come with a 5xx status (Bitrix24 sends
// PORTAL_DELETED as 500, for one). Compared in upper case.
var permanentCodes = map[string]bool{
	"NO_AUTH_FOUND":                   true,
	"EXPIRED_TOKEN":                   true, // needs a token refresh first, not a plain retry
	"INVALID_TOKEN":                   true,
	"INVALID_CREDENTIALS":             true,
	"INSUFFICIENT_SCOPE":              true,
	"ACCESS_DENIED":                   true,
	"USER_ACCESS_ERROR":               true,
	"ERROR_METHOD_NOT_FOUND":          true,
	"PORTAL_DELETED":                  true,
	"INVALID_REQUEST":                 true,
	"ERROR_BATCH_LENGTH_EXCEEDED":     true,
	"ERROR_BATCH_METHOD_NOT_ALLOWED":  true,
	"ERROR_MANIFEST_IS_NOT_AVAILABLE": true,
}

// Sentinels for the codes callers branch on. Compare with errors.Is; never modify them.
var (
	// ErrQueryLimitExceeded: over the portal's request-rate limit (HTTP 503). Slow down.
	ErrQueryLimitExceeded = &Error{Code: "QUERY_LIMIT_EXCEEDED"}
	// ErrOverloadLimit: REST blocked for this portal by hand (HTTP 503).
	ErrOverloadLimit = &Error{Code: "OVERLOAD_LIMIT"}
	// ErrOperationTimeLimit: a method used more than its time budget (HTTP 429).
	ErrOperationTimeLimit = &Error{Code: "OPERATION_TIME_LIMIT"}
	// ErrNoAuthFound: wrong webhook secret or token (HTTP 401).
	ErrNoAuthFound = &Error{Code: "NO_AUTH_FOUND"}
	// ErrExpiredToken: the OAuth access token expired (HTTP 401); refresh it.
	ErrExpiredToken = &Error{Code: "expired_token"}
	// ErrInvalidToken: the OAuth token is not valid.
	ErrInvalidToken = &Error{Code: "invalid_token"}
	// ErrInsufficientScope: the webhook or app lacks the scope (HTTP 403).
	ErrInsufficientScope = &Error{Code: "insufficient_scope"}
	// ErrAccessDenied: REST is not available (e.g. free plan) (HTTP 403).
	ErrAccessDenied = &Error{Code: "ACCESS_DENIED"}
	// ErrMethodNotFound: no such method, or its module is not installed (HTTP 404).
	ErrMethodNotFound = &Error{Code: "ERROR_METHOD_NOT_FOUND"}
)

// ErrBatchTooLarge is returned by Batch for more than MaxBatch commands. Bitrix24 would
// fail the commands past the limit; splitting silently would break halt semantics.
var ErrBatchTooLarge = errors.New("bitrix24: batch has more than 50 commands")

// ErrBatchSkipped is the Err of a batch command the portal did not run because an
// earlier command failed and the batch was sent with halt.
var ErrBatchSkipped = errors.New("bitrix24: batch command not run: an earlier command failed and the batch halted")

// errorPrefix starts an error text: "bitrix24 imbot.message.add".
func errorPrefix(method string) *strings.Builder {
	b := &strings.Builder{}
	b.WriteString("bitrix24")
	if method != "" {
		b.WriteString(" ")
		b.WriteString(method)
	}
	return b
}

// TransportError means the call produced no Bitrix24 envelope: the connection failed,
// timed out or was reset, or the answer was not JSON (an HTML error page from a proxy
// under load, a 5xx with no body).
type TransportError struct {
	Method     string
	Host       string // the portal's host; never the full URL, whose path holds the webhook secret
	HTTPStatus int    // 0 when no response arrived
	// MaybeSent: the request may have reached the portal, and so may have run. It is
	// true once the request was written (a timeout or reset while awaiting the answer)
	// or when any response arrived; false when the call surely did not run (dial or DNS
	// failure, connection refused, context done before sending). Calls that are not
	// idempotent, such as imbot.message.add, may only be retried when it is false.
	MaybeSent bool
	Err       error
}

func (e *TransportError) Error() string {
	b := errorPrefix(e.Method)
	if e.Host != "" {
		b.WriteString(" (")
		b.WriteString(e.Host)
		b.WriteString(")")
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("transport error")
	}
	if e.HTTPStatus != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
		b.WriteString(")")
	}
	if e.MaybeSent {
		b.WriteString(" [may have been sent]")
	}
	return b.String()
}

// Unwrap gives errors.Is access to the cause, e.g. context.DeadlineExceeded.
func (e *TransportError) Unwrap() error { return e.Err }

// RefreshError: a call met expired_token and the token could not be renewed. The call
// itself did not run, so it may be repeated once the portal's tokens work again. It
// deliberately does not unwrap to the OAuth server's *Error: an invalid_grant there is
// not the REST method's permanent refusal, and a retry layer must not give the call
// up for it. Cause returns the refresh's own error.
type RefreshError struct {
	Method string
	Err    error
}

func (e *RefreshError) Error() string {
	return "bitrix24 " + e.Method + ": refresh the access token: " + e.Err.Error()
}

// Cause is the refresh's error.
func (e *RefreshError) Cause() error { return e.Err }

// BatchRefused reports an answer that shows the portal did not run an imbot.v2
// method because it came inside batch: ERROR_BATCH_METHOD_NOT_ALLOWED, or a
// method-not-found for a method the portal serves outside batch. batch.md names only
// file transfers and nested batches as refused, but a portal may know better: such a
// sub-call surely did not run, so it may be sent again alone.
func BatchRefused(method string, err error) bool {
	var e *Error
	if !IsV2Method(method) || !errors.As(err, &e) {
		return false
	}
	switch strings.ToUpper(e.Code) {
	case "ERROR_BATCH_METHOD_NOT_ALLOWED", "ERROR_METHOD_NOT_FOUND", "METHOD_NOT_FOUND":
		return true
	}
	return false
}

// IsV2Method reports an imbot.v2 method.
func IsV2Method(method string) bool { return strings.HasPrefix(strings.ToLower(method), "imbot.v2.") }
