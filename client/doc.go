// Package client is the Go client of the master's API (docs/api.md): one
// method per endpoint, the wire types of package api in and out. The CLI's
// cluster commands, the tests, framework programs and the Kubernetes
// bridge use it.
//
//	c, err := client.New(client.Options{URL: "https://master:7050", Token: tok, TLS: tlsConfig})
//	s, err := c.Submit(ctx, spec)
//	err = c.Events(ctx, s.ID, func(ev api.SessionEvent) error { ... })
//
// A framework session's program follows its events stream (offers,
// rescinds, conflicts, notices, status updates), answers offers with
// Accept or Decline, Suppresses and Revives them, Acknowledges the status
// updates it has handled, and calls Reconcile after a reconnect to compare
// what it knows with what the master knows.
//
// Every error of the master (an api.Error body) is a *Error, which
// matches its sentinel of package api with errors.Is (api.ErrNotFound,
// api.ErrForbidden, ...); a master that cannot be reached, or that breaks
// off an answer, is an error matching api.ErrUnavailable. Answers are read
// up to a limit. The client never logs, and no error carries its token.
package client
