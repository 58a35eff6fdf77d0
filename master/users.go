package master

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// The admin's and tenants' endpoints: consumers, tokens, sessions, tasks.

func (m *Master) putConsumers(w http.ResponseWriter, r *http.Request, c caller) error {
	var tree api.ConsumerTree
	if err := decode(w, r, maxConsumersBody, &tree); err != nil {
		return err
	}
	if err := checkTree(tree); err != nil {
		return err
	}
	res, err := m.do(r.Context(), func(tx *txn) (any, error) {
		if err := tx.log(&record{Consumers: &tree}); err != nil {
			if errorsIs(err, api.ErrConflict) {
				return nil, err
			}
			return nil, &api.FieldError{Field: "consumers", Err: err}
		}
		return m.consumerStatus(c), nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// checkTree checks the paths of a consumer tree: absolute, made of valid
// names, each once, each under a consumer of the tree.
func checkTree(tree api.ConsumerTree) error {
	paths := map[string]bool{}
	for i, c := range tree.Consumers {
		bad := func(format string, args ...any) error {
			return invalid("consumers.path", fmt.Sprintf("%q", c.Path), "consumer %d: "+format, append([]any{i + 1}, args...)...)
		}
		names, ok := strings.CutPrefix(c.Path, "/")
		if !ok || names == "" {
			return bad("want an absolute path below the root, as /eng/ml")
		}
		for _, n := range strings.Split(names, "/") {
			if !api.ValidName(n) {
				return bad("%q: want a letter or digit, then letters, digits, '_', '.' and '-'", n)
			}
		}
		if paths[c.Path] {
			return bad("listed twice")
		}
		paths[c.Path] = true
	}
	for _, c := range tree.Consumers {
		if p := parentPath(c.Path); p != "" && !paths[p] {
			return invalid("consumers.path", fmt.Sprintf("%q", c.Path), "its parent %s is not in the tree", p)
		}
	}
	return nil
}

func (m *Master) getConsumers(w http.ResponseWriter, r *http.Request, c caller) error {
	res, err := m.do(r.Context(), func(*txn) (any, error) { return m.consumerStatus(c), nil })
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// consumerStatus is the consumer tree with its accounting, as far as the
// caller may see it.
func (m *Master) consumerStatus(c caller) []api.ConsumerStatus {
	byName := map[string]scheduler.ConsumerStatus{}
	for _, st := range m.core.Consumers() {
		byName[st.Name] = st
	}
	out := []api.ConsumerStatus{}
	for _, cs := range m.consumers.Consumers {
		if !c.sees(cs.Path) {
			continue
		}
		st := byName[cs.Path]
		out = append(out, api.ConsumerStatus{
			Consumer: cs, Leaf: st.Leaf, Held: scheduler.WireResources(st.Held),
			Deserved: scheduler.WireResources(st.Deserved), Pending: scheduler.WireResources(st.Pending), Sessions: st.Sessions,
		})
	}
	return out
}

func (m *Master) postToken(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req api.TokenRequest
	if err := decode(w, r, maxBody, &req); err != nil {
		return err
	}
	tok, err := m.createToken(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tok)
}

// CreateToken makes a token (as POST /v1/tokens does) and returns it with
// its secret, which the master does not keep.
func (m *Master) CreateToken(req api.TokenRequest) (api.Token, error) {
	return m.createToken(context.Background(), req)
}

func (m *Master) createToken(ctx context.Context, req api.TokenRequest) (api.Token, error) {
	if req.Role == "" {
		req.Role = api.RoleTenant
	}
	switch req.Role {
	case api.RoleTenant:
		if req.Consumer == "" {
			return api.Token{}, invalid("consumer", "", "a tenant token is bound to a consumer")
		}
	case api.RoleAdmin, api.RoleAgent:
		if req.Consumer != "" {
			return api.Token{}, invalid("consumer", "", "only tenant tokens are bound to a consumer")
		}
	default:
		return api.Token{}, invalid("role", fmt.Sprintf("%q", req.Role), "want %s, %s or %s", api.RoleTenant, api.RoleAdmin, api.RoleAgent)
	}
	if len(req.Name) > 256 {
		return api.Token{}, invalid("name", "", "longer than 256 bytes")
	}
	res, err := m.do(ctx, func(tx *txn) (any, error) {
		if req.Role == api.RoleTenant && !m.hasConsumer(req.Consumer) {
			return nil, unknownConsumer(req.Consumer)
		}
		return m.newToken(tx, req)
	})
	if err != nil {
		return api.Token{}, err
	}
	return res.(api.Token), nil
}

func (m *Master) hasConsumer(path string) bool {
	return slices.ContainsFunc(m.consumers.Consumers, func(c api.Consumer) bool { return c.Path == path })
}

func unknownConsumer(path string) error {
	return invalid("consumer", fmt.Sprintf("%q", path), "no such consumer")
}

// newToken logs a new token and returns it with its secret.
func (m *Master) newToken(tx *txn, req api.TokenRequest) (api.Token, error) {
	id := newID(func(id string) bool { return m.tokens[id] != nil })
	var b [32]byte
	_, _ = rand.Read(b[:])
	secret := id + "." + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	rec := &tokenRecord{ID: id, Role: req.Role, Consumer: req.Consumer, Name: req.Name, Created: tx.now, Hash: sum[:]}
	if req.TTL > 0 {
		rec.Expires = tx.now.Add(req.TTL.D())
	}
	if err := tx.log(&record{Token: rec}); err != nil {
		return api.Token{}, err
	}
	t := tokenView(rec)
	t.Secret = secret
	return t, nil
}

func tokenView(r *tokenRecord) api.Token {
	return api.Token{ID: r.ID, Role: r.Role, Consumer: r.Consumer, Name: r.Name, Created: r.Created, Expires: r.Expires}
}

// BootstrapAdmin makes an admin token when the master has no admin token
// that is still valid, for a cluster's first start (caisson up); created
// says whether it did.
func (m *Master) BootstrapAdmin() (secret string, created bool, err error) {
	res, err := m.do(context.Background(), func(tx *txn) (any, error) {
		for _, t := range m.tokens {
			if t.Role == api.RoleAdmin && (t.Expires.IsZero() || tx.now.Before(t.Expires)) {
				return api.Token{}, nil
			}
		}
		return m.newToken(tx, api.TokenRequest{Role: api.RoleAdmin, Name: "admin"})
	})
	if err != nil {
		return "", false, err
	}
	tok := res.(api.Token)
	return tok.Secret, tok.Secret != "", nil
}

func (m *Master) getTokens(w http.ResponseWriter, r *http.Request, _ caller) error {
	res, err := m.do(r.Context(), func(*txn) (any, error) {
		out := []api.Token{}
		for _, t := range m.tokens {
			out = append(out, tokenView(t))
		}
		slices.SortFunc(out, func(a, b api.Token) int { return a.Created.Compare(b.Created)*2 + strings.Compare(a.ID, b.ID) })
		return out, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (m *Master) deleteToken(w http.ResponseWriter, r *http.Request, _ caller) error {
	id := r.PathValue("id")
	_, err := m.do(r.Context(), func(tx *txn) (any, error) {
		if m.tokens[id] == nil {
			return nil, fmt.Errorf("token %s: %w", id, api.ErrNotFound)
		}
		return nil, tx.log(&record{Revoke: &revokeRecord{ID: id}})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Sessions.

func (m *Master) postSession(w http.ResponseWriter, r *http.Request, c caller) error {
	var spec api.SessionSpec
	if err := decode(w, r, maxBody, &spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	if spec.Consumer == "" {
		if c.admin() {
			return invalid("consumer", "", "an admin names the consumer the session runs under")
		}
		spec.Consumer = c.tok.Consumer
	}
	res, err := m.do(r.Context(), func(tx *txn) (any, error) {
		if !c.sees(spec.Consumer) || !m.hasConsumer(spec.Consumer) {
			return nil, unknownConsumer(spec.Consumer)
		}
		if !m.leaves[spec.Consumer] {
			return nil, invalid("consumer", fmt.Sprintf("%q", spec.Consumer), "sessions run under leaf consumers, and this one has children")
		}
		id := newID(func(id string) bool { return m.sessions[id] != nil })
		if err := tx.log(&record{Session: &sessionRecord{ID: id, User: c.tok.Name, Spec: spec, Submitted: tx.now}}); err != nil {
			return nil, err
		}
		return m.sessionView(m.sessions[id]), nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, res)
}

// checkSpec is scheduler.CheckSession and what the core would refuse
// besides.
func checkSpec(spec api.SessionSpec) error {
	if err := scheduler.CheckSession(spec); err != nil {
		return err
	}
	if len(spec.Name) > 256 {
		return invalid("name", "", "longer than 256 bytes")
	}
	for _, g := range spec.Groups {
		if g.Max > 0 && g.Min > g.Max {
			return invalid("groups.min", fmt.Sprint(g.Min), "group %s: above its max %d", g.Name, g.Max)
		}
	}
	return nil
}

func (m *Master) sessionView(s *session) api.Session {
	out := api.Session{ID: s.rec.ID, Spec: s.rec.Spec, State: "running", Submitted: s.rec.Submitted, Finished: s.finished, Groups: s.groups}
	if s.running() {
		st, _ := m.core.Session(s.rec.ID)
		out.Groups = groupStatus(st)
	} else {
		out.State = "finished"
	}
	return out
}

// visibleSession is a session the caller may see, or ErrNotFound, also
// for another tenant's: existence does not leak.
func (m *Master) visibleSession(c caller, id string) (*session, error) {
	s := m.sessions[id]
	if s == nil || !c.sees(s.rec.Spec.Consumer) {
		return nil, fmt.Errorf("session %s: %w", id, api.ErrNotFound)
	}
	return s, nil
}

// runningSession is a visible session that has not finished.
func (m *Master) runningSession(c caller, id string) (*session, error) {
	s, err := m.visibleSession(c, id)
	if err == nil && !s.running() {
		err = fmt.Errorf("session %s has finished: %w", id, api.ErrWrongState)
	}
	return s, err
}

func (m *Master) getSessions(w http.ResponseWriter, r *http.Request, c caller) error {
	all := r.URL.Query().Get("all") == "true"
	res, err := m.do(r.Context(), func(*txn) (any, error) {
		out := []api.Session{}
		for _, s := range m.sessions {
			if c.sees(s.rec.Spec.Consumer) && (all || s.running()) {
				out = append(out, m.sessionView(s))
			}
		}
		slices.SortFunc(out, func(a, b api.Session) int { return a.Submitted.Compare(b.Submitted)*2 + strings.Compare(a.ID, b.ID) })
		return out, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// sessionCall runs fn on a session the caller may see (running, when
// running is set) in the loop, and writes what it returns: JSON, or 204
// for nil.
func (m *Master) sessionCall(w http.ResponseWriter, r *http.Request, c caller, running bool, fn func(tx *txn, s *session) (any, error)) error {
	id := r.PathValue("id")
	res, err := m.do(r.Context(), func(tx *txn) (any, error) {
		s, err := m.visibleSession(c, id)
		if err == nil && running && !s.running() {
			err = fmt.Errorf("session %s has finished: %w", id, api.ErrWrongState)
		}
		if err != nil {
			return nil, err
		}
		return fn(tx, s)
	})
	if err != nil {
		return err
	}
	if res == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return writeJSON(w, http.StatusOK, res)
}

func (m *Master) getSession(w http.ResponseWriter, r *http.Request, c caller) error {
	return m.sessionCall(w, r, c, false, func(_ *txn, s *session) (any, error) { return m.sessionView(s), nil })
}

func (m *Master) deleteSession(w http.ResponseWriter, r *http.Request, c caller) error {
	return m.sessionCall(w, r, c, false, func(tx *txn, s *session) (any, error) {
		if s.running() {
			if err := tx.log(eventRecord(scheduler.SessionFinished{Session: s.rec.ID})); err != nil {
				return nil, err
			}
		}
		return m.sessionView(s), nil
	})
}

func (m *Master) scaleSession(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.ScaleRequest
	if err := decode(w, r, maxBody, &req); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, true, func(tx *txn, s *session) (any, error) {
		g := s.group(req.Group)
		switch {
		case g == nil:
			return nil, invalid("group", fmt.Sprintf("%q", req.Group), "the session has no such group")
		case req.Count < 0:
			return nil, invalid("count", fmt.Sprint(req.Count), "negative")
		case g.Max > 0 && req.Count > g.Max:
			return nil, invalid("count", fmt.Sprint(req.Count), "above the group's max %d", g.Max)
		}
		if err := tx.log(eventRecord(scheduler.SessionUpdated{Session: s.rec.ID, Group: req.Group, Count: req.Count})); err != nil {
			return nil, err
		}
		if err := m.finishIfDone(tx, s); err != nil {
			return nil, err
		}
		return m.sessionView(s), nil
	})
}

// finishIfDone ends a batch session whose groups want no more tasks and
// run none.
func (m *Master) finishIfDone(tx *txn, s *session) error {
	if !s.running() || (s.rec.Spec.Kind != "" && s.rec.Spec.Kind != api.SessionBatch) {
		return nil
	}
	st, ok := m.core.Session(s.rec.ID)
	if !ok {
		return nil
	}
	for _, g := range st.Groups {
		if g.Count > 0 || g.Running > 0 {
			return nil
		}
	}
	return tx.log(eventRecord(scheduler.SessionFinished{Session: s.rec.ID}))
}

// Framework sessions.

func (m *Master) sessionEvents(w http.ResponseWriter, r *http.Request, c caller) error {
	id := r.PathValue("id")
	st := newStream(nil)
	res, err := m.do(r.Context(), func(tx *txn) (any, error) {
		s, err := m.runningSession(c, id)
		if err != nil {
			return nil, err
		}
		first := m.replayTo(s)
		tx.after(func() {
			for _, ev := range first {
				st.push(ev)
			}
			s.streams[st] = struct{}{}
		})
		return s, nil
	})
	if err != nil {
		return err
	}
	s := res.(*session)
	defer func() {
		_, _ = m.do(context.Background(), func(*txn) (any, error) {
			delete(s.streams, st)
			return nil, nil
		})
	}()
	st.serve(w, r, m.done, api.SessionEvent{Ping: true})
	return nil
}

// sessionOffer is an offer of the session, or ErrNotFound naming the
// field.
func (m *Master) sessionOffer(s *session, id string) error {
	if o := m.offers[id]; o != nil && o.session != s.rec.ID {
		return &api.FieldError{Field: "offer", Value: id, Err: fmt.Errorf("not an offer of session %s: %w", s.rec.ID, api.ErrNotFound)}
	}
	return nil
}

func offerError(err error) error {
	if errorsIs(err, api.ErrNotFound) {
		return &api.FieldError{Field: "offer", Err: err}
	}
	return err
}

func (m *Master) accept(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.Accept
	if err := decode(w, r, maxBody, &req); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, true, func(tx *txn, s *session) (any, error) {
		if !s.framework() {
			return nil, fmt.Errorf("session %s is not a framework session: it gets no offers: %w", s.rec.ID, api.ErrWrongState)
		}
		if err := m.sessionOffer(s, req.Offer); err != nil {
			return nil, err
		}
		ev := scheduler.OfferAccepted{Offer: req.Offer}
		for _, t := range req.Tasks {
			if s.group(t.Group) == nil {
				return nil, invalid("tasks.group", fmt.Sprintf("%q", t.Group), "the session has no such group")
			}
			if t.Count <= 0 {
				return nil, invalid("tasks.count", fmt.Sprint(t.Count), "group %s: want a positive count", t.Group)
			}
			ev.Tasks = append(ev.Tasks, scheduler.AcceptedTask{Group: t.Group, Count: t.Count})
		}
		tx.conflictTo = s.rec.ID
		defer func() { tx.conflictTo = "" }()
		return nil, offerError(tx.log(eventRecord(ev)))
	})
}

func (m *Master) decline(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.Decline
	if err := decode(w, r, maxBody, &req); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, true, func(tx *txn, s *session) (any, error) {
		if err := m.sessionOffer(s, req.Offer); err != nil {
			return nil, err
		}
		if m.offers[req.Offer] == nil {
			// Gone already (rescinded, timed out, accepted), or never
			// made: nothing to give back.
			return nil, nil
		}
		return nil, tx.log(eventRecord(scheduler.OfferDeclined{Offer: req.Offer, Refuse: req.Refuse.D()}))
	})
}

func (m *Master) suppress(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, true, func(tx *txn, s *session) (any, error) {
		return nil, tx.log(eventRecord(scheduler.Suppress{Session: s.rec.ID}))
	})
}

func (m *Master) revive(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, true, func(tx *txn, s *session) (any, error) {
		return nil, tx.log(eventRecord(scheduler.Revive{Session: s.rec.ID}))
	})
}

func (m *Master) acknowledge(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.Acks
	if err := decode(w, r, maxBody, &req); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, false, func(tx *txn, s *session) (any, error) {
		want := map[string]bool{}
		for _, u := range req.UUIDs {
			want[u] = true
		}
		var acked []string
		for _, u := range s.unacked {
			if want[u.UUID] {
				acked = append(acked, u.UUID)
			}
		}
		if len(acked) == 0 {
			return nil, nil
		}
		return nil, tx.log(&record{Acked: &ackRecord{Session: s.rec.ID, UUIDs: acked}})
	})
}

func (m *Master) reconcile(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	return m.sessionCall(w, r, c, false, func(_ *txn, s *session) (any, error) {
		out := make([]api.Task, 0, len(s.tasks))
		for _, t := range s.tasks {
			out = append(out, t.Task)
		}
		return out, nil
	})
}

// Tasks.

func (m *Master) getTasks(w http.ResponseWriter, r *http.Request, c caller) error {
	only := r.URL.Query().Get("session")
	res, err := m.do(r.Context(), func(*txn) (any, error) {
		out := []api.Task{}
		if only != "" {
			s, err := m.visibleSession(c, only)
			if err != nil {
				return nil, err
			}
			for _, t := range s.tasks {
				out = append(out, t.Task)
			}
			return out, nil
		}
		var ts []*task
		for _, t := range m.tasks {
			if s := m.sessions[t.Session]; s != nil && c.sees(s.rec.Spec.Consumer) {
				ts = append(ts, t)
			}
		}
		slices.SortFunc(ts, func(a, b *task) int { return cmp.Compare(a.seq, b.seq) })
		for _, t := range ts {
			out = append(out, t.Task)
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// visibleTask is a task of a session the caller may see, or ErrNotFound.
func (m *Master) visibleTask(c caller, id string) (*task, error) {
	t := m.tasks[id]
	if t != nil {
		if _, err := m.visibleSession(c, t.Session); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("task %s: %w", id, api.ErrNotFound)
}

func (m *Master) getTask(w http.ResponseWriter, r *http.Request, c caller) error {
	id := r.PathValue("id")
	res, err := m.do(r.Context(), func(*txn) (any, error) {
		t, err := m.visibleTask(c, id)
		if err != nil {
			return nil, err
		}
		return t.Task, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (m *Master) killTask(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	id := r.PathValue("id")
	res, err := m.do(r.Context(), func(tx *txn) (any, error) {
		t, err := m.visibleTask(c, id)
		if err != nil {
			return nil, err
		}
		if t.inCore {
			if err := tx.log(&record{Kill: &killRecord{Task: id, Reason: "killed by " + callerName(c), Time: tx.now}}); err != nil {
				return nil, err
			}
			if err := m.finishIfDone(tx, m.sessions[t.Session]); err != nil {
				return nil, err
			}
		}
		return t.Task, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func callerName(c caller) string {
	if c.tok.Name != "" {
		return c.tok.Name
	}
	return "token " + c.tok.ID
}
