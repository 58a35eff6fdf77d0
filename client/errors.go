package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caisson/caisson/api"
)

// Error is an error answer of the master: its HTTP status and its
// api.Error body. errors.Is matches it against its code's sentinel of
// package api.
type Error struct {
	Status int
	// Code is the sentinel's name: invalid, not_found, conflict,
	// forbidden, unauthorized, too_large, unavailable, internal.
	Code    string
	Message string
	// Field is the JSON path of the request's field at fault ("groups.count"),
	// when the master names one.
	Field string
}

// Error is the master's message, with the field at fault when the
// message does not name it.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
		if msg == "" {
			msg = fmt.Sprintf("status %d", e.Status)
		}
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	return "master: " + msg
}

// Unwrap is the sentinel of the error's code; nil for internal errors and
// codes this client does not know.
func (e *Error) Unwrap() error { return codeSentinels[e.Code] }

// codeSentinels are the codes of api.Error and the sentinels they name.
var codeSentinels = map[string]error{
	"invalid":      api.ErrInvalid,
	"not_found":    api.ErrNotFound,
	"conflict":     api.ErrConflict,
	"forbidden":    api.ErrForbidden,
	"unauthorized": api.ErrUnauthorized,
	"too_large":    api.ErrTooLarge,
	"unavailable":  api.ErrUnavailable,
}

// statusCodes give a code to an error answer without an api.Error body (a
// proxy's, or a master's that broke off).
var statusCodes = map[int]string{
	http.StatusBadRequest:            "invalid",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "not_found",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusBadGateway:            "unavailable",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusGatewayTimeout:        "unavailable",
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 64 << 10

// answerError makes the *Error of an error answer whose body (read up to
// maxErrorBody) is body: its api.Error, else a code from its status and
// the start of its text.
func answerError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var ae api.Error
	if err := json.Unmarshal(body, &ae); err == nil && ae.Code != "" {
		e.Code, e.Message, e.Field = printable(ae.Code, 64), printable(ae.Message, 4096), printable(ae.Field, 256)
	} else {
		e.Message = printable(string(body), 200)
	}
	if e.Code == "" {
		e.Code = statusCodes[status]
	}
	if e.Code == "" {
		e.Code = "internal"
	}
	return e
}

// printable is s as one line of at most max bytes (and "..."), without
// control characters: what a master sends may end up on a terminal.
func printable(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
