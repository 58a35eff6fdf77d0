package master

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
)

// events opens a session's event stream.
func (cl *client) events(t *testing.T, session string) (<-chan api.SessionEvent, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := openStream[api.SessionEvent](cl, ctx, "/v1/sessions/"+session+"/events")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return ch, cancel
}

func isNotice(ev api.SessionEvent) bool  { return ev.Notice != nil }
func isOffer(ev api.SessionEvent) bool   { return ev.Offer != nil }
func isUpdate(ev api.SessionEvent) bool  { return ev.Update != nil }
func isRescind(ev api.SessionEvent) bool { return ev.Rescind != nil }

// reclaimGrace is the owner's grace in the reclaim tests.
const reclaimGrace = 30 * time.Second

// newReclaimCluster is a master with an owner that owns all of its one
// agent (4 CPUs, 8 GiB), with a grace of reclaimGrace, and a borrower
// that owns nothing; it returns their clients and the agent.
func newReclaimCluster(t *testing.T) (c *cluster, owner, borrower *client, a *fakeAgent) {
	t.Helper()
	c = newCluster(t, clusterOptions{})
	c.consumers(api.Consumer{Path: "/owner", Owned: api.TaskResources{CPUs: 4, MemoryBytes: 8 << 30}, Grace: api.Duration(reclaimGrace)},
		api.Consumer{Path: "/borrower"})
	owner = c.client(c.newToken(api.TokenRequest{Consumer: "/owner"}), false)
	borrower = c.client(c.newToken(api.TokenRequest{Consumer: "/borrower"}), false)
	a = c.newAgent(c.newToken(api.TokenRequest{Role: api.RoleAgent}), "node", nodeResources(4, 8<<30), nil).start()
	c.advance(time.Second)
	return c, owner, borrower, a
}

// TestReclaim: a consumer borrows another's idle owned share; when the
// owner's demand returns, the borrowed tasks get a notice on their
// session's stream at once, and on their agent a kill with the deadline
// (SIGTERM) their kill grace before it; at the deadline they are killed
// and the owner's tasks launched.
func TestReclaim(t *testing.T) {
	c, owner, borrower, a := newReclaimCluster(t)

	var borrowed api.Session
	borrower.must(http.MethodPost, "/v1/sessions", batchSpec("borrow", 4, 1), http.StatusCreated, &borrowed)
	events, _ := borrower.events(t, borrowed.ID)
	for range 4 {
		l := a.nextLaunch()
		a.report(update(l.Task, api.TaskRunning))
		if tk := c.task(l.Task); !tk.Revocable {
			t.Errorf("task %s on the owner's idle share is not revocable", l.Task)
		}
	}

	var owned api.Session
	owner.must(http.MethodPost, "/v1/sessions", batchSpec("own", 2, 1), http.StatusCreated, &owned)
	c.advance(time.Second)
	deadline := c.clock.Now().Add(reclaimGrace)
	noticed := map[string]bool{}
	for range 2 {
		n := next(t, events, "a notice", isNotice).Notice
		if !n.Deadline.Equal(deadline) {
			t.Errorf("notice of %s: deadline %s, want %s", n.Task, n.Deadline, deadline)
		}
		noticed[n.Task] = true
	}
	// The SIGTERM waits for the kill grace before the deadline, across a
	// restart of the master.
	c.advance(time.Second)
	c.restart()
	a.register()
	a.connect()
	c.advance(reclaimGrace - DefaultKillGrace - 2*time.Second)
	if sent := killsSent(c, noticed); len(sent) > 0 {
		t.Errorf("kills sent before the kill grace before the deadline: %v", sent)
	}
	c.advance(time.Second)
	for range 2 {
		k := a.nextKill()
		if want := (api.TaskKill{Task: k.Task, Reason: "reclaimed", Deadline: deadline}); !noticed[k.Task] || !cmp.Equal(want, k) {
			t.Errorf("kill on the agent: %+v, want %+v for one of %v", k, want, noticed)
		}
	}
	// At the deadline: killed, and the owner's tasks start.
	c.advance(DefaultKillGrace)
	for range 2 {
		k := a.nextKill()
		if !noticed[k.Task] || k.Reason != "reclaimed" {
			t.Errorf("kill at the deadline: %+v, want one of %v", k, noticed)
		}
		a.report(update(k.Task, api.TaskKilled))
		if tk := c.task(k.Task); tk.State != api.TaskKilled || tk.Reason != "reclaimed" {
			t.Errorf("reclaimed task: %s (%s)", tk.State, tk.Reason)
		}
	}
	for range 2 {
		if l := a.nextLaunch(); l.Session != owned.ID {
			t.Errorf("launch of %s after the reclaim, want the owner's", l.Task)
		}
	}
	c.restart() // and the restored state is the same
}

// killsSent lists the tasks among ids that the master has sent a kill.
func killsSent(c *cluster, ids map[string]bool) []string {
	return inLoop(c, func(m *Master) []string {
		var out []string
		for id := range ids {
			if t := m.tasks[id]; t != nil && t.kill != nil {
				out = append(out, id)
			}
		}
		return out
	})
}

// TestReclaimWithdrawn: when the owner's demand goes before the borrowed
// tasks' SIGTERM is due, their notices are withdrawn and their agent never
// hears of them: the tasks run on, past the deadline, across a restart.
func TestReclaimWithdrawn(t *testing.T) {
	c, owner, borrower, a := newReclaimCluster(t)

	var borrowed, owned api.Session
	borrower.must(http.MethodPost, "/v1/sessions", batchSpec("borrow", 4, 1), http.StatusCreated, &borrowed)
	events, _ := borrower.events(t, borrowed.ID)
	running := map[string]bool{}
	for range 4 {
		l := a.nextLaunch()
		a.report(update(l.Task, api.TaskRunning))
		running[l.Task] = true
	}
	owner.must(http.MethodPost, "/v1/sessions", batchSpec("own", 2, 1), http.StatusCreated, &owned)
	c.advance(time.Second)
	for range 2 {
		next(t, events, "a notice", isNotice)
	}
	c.advance(5 * time.Second)
	owner.must(http.MethodDelete, "/v1/sessions/"+owned.ID, nil, http.StatusOK, nil)
	c.advance(time.Second)
	for range 2 {
		next(t, events, "a withdrawal", func(ev api.SessionEvent) bool { return ev.Withdrawal != nil })
	}
	c.advance(reclaimGrace)
	if sent := killsSent(c, running); len(sent) > 0 {
		t.Errorf("kills sent for withdrawn notices: %v", sent)
	}
	for id := range running {
		if tk := c.task(id); tk.State != api.TaskRunning || !tk.Deadline.IsZero() {
			t.Errorf("task %s after its notice was withdrawn: %s, deadline %s", id, tk.State, tk.Deadline)
		}
	}
	c.restart()
	c.advance(reclaimGrace)
	if sent := killsSent(c, running); len(sent) > 0 {
		t.Errorf("kills sent after a restart: %v", sent)
	}
}

// TestFrameworkSession: offers on the stream, accept launches, decline
// with a refuse time, suppress and revive, acknowledgements, and status
// updates repeated until acknowledged, reconcile.
func TestFrameworkSession(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node-a", nodeResources(4, 8<<30), map[string]string{"rack": "r1"}).start()
	spec := batchSpec("fw", 3, 1)
	spec.Kind = api.SessionFramework
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", spec, http.StatusCreated, &sess)
	events, closeEvents := s.ml.events(t, sess.ID)
	base := "/v1/sessions/" + sess.ID

	o := next(t, events, "an offer", isOffer).Offer
	if o.Agent != a.ID || o.Resources.CPUs != 4 || o.Attributes["rack"] != "r1" || o.Attributes["hostname"] != "node-a" {
		t.Errorf("offer: %+v", o)
	}
	// Another session's offer, or one never made, is not this one's.
	if got, e := s.ml.call(http.MethodPost, base+"/accept", api.Accept{Offer: "o999", Tasks: []api.AcceptTasks{{Group: "work", Count: 1}}}, nil); got != http.StatusNotFound || e.Field != "offer" {
		t.Errorf("accept of an offer never made: %d %+v", got, e)
	}
	s.ml.must(http.MethodPost, base+"/accept", api.Accept{Offer: o.ID, Tasks: []api.AcceptTasks{{Group: "work", Count: 1}}}, http.StatusNoContent, nil)
	l := a.nextLaunch()
	if l.Session != sess.ID {
		t.Fatalf("launch %+v", l)
	}
	// The rest of the agent is offered again, at once.
	o = next(t, events, "the second offer", isOffer).Offer
	u := update(l.Task, api.TaskRunning)
	a.report(u)
	if got := next(t, events, "the running update", isUpdate).Update; got.UUID != u.UUID || got.State != api.TaskRunning {
		t.Errorf("update on the stream: %+v", got)
	}
	// Declined for a minute: not offered again before.
	s.ml.must(http.MethodPost, base+"/decline", api.Decline{Offer: o.ID, Refuse: api.Duration(time.Minute)}, http.StatusNoContent, nil)
	s.advance(30 * time.Second)
	if got := outstanding(s.cluster, sess.ID); len(got) != 0 {
		t.Errorf("offers within the refuse time: %v", got)
	}
	s.advance(31 * time.Second)
	o = next(t, events, "an offer after the refuse time", isOffer).Offer

	// Suppressed: no offers (the outstanding one times out); revived:
	// offers again.
	s.ml.must(http.MethodPost, base+"/suppress", nil, http.StatusNoContent, nil)
	s.advance(11 * time.Second)
	next(t, events, "the rescind of the offer that timed out", func(ev api.SessionEvent) bool { return ev.Rescind != nil && ev.Rescind.Offer == o.ID })
	s.advance(time.Minute)
	if got := outstanding(s.cluster, sess.ID); len(got) != 0 {
		t.Errorf("offers while suppressed: %v", got)
	}
	s.ml.must(http.MethodPost, base+"/revive", nil, http.StatusNoContent, nil)
	o = next(t, events, "an offer after revive", isOffer).Offer
	// An accept of an offer that timed out is a conflict on the stream.
	s.advance(11 * time.Second)
	next(t, events, "the rescind", isRescind)
	s.ml.must(http.MethodPost, base+"/accept", api.Accept{Offer: o.ID, Tasks: []api.AcceptTasks{{Group: "work", Count: 1}}}, http.StatusNoContent, nil)
	if c := next(t, events, "a conflict", func(ev api.SessionEvent) bool { return ev.Conflict != nil }).Conflict; c.Offer != o.ID {
		t.Errorf("conflict %+v, want one for %s", c, o.ID)
	}

	// Not acknowledged: sent again on the next stream; acknowledged: not.
	closeEvents()
	events, closeEvents = s.ml.events(t, sess.ID)
	if got := next(t, events, "the unacknowledged update", isUpdate).Update; got.UUID != u.UUID {
		t.Errorf("repeated update %+v, want %s", got, u.UUID)
	}
	s.ml.must(http.MethodPost, base+"/acknowledge", api.Acks{UUIDs: []string{u.UUID}}, http.StatusNoContent, nil)
	closeEvents()
	if got := inLoop(s.cluster, func(m *Master) int { return len(m.sessions[sess.ID].unacked) }); got != 0 {
		t.Errorf("%d updates unacknowledged after the acknowledgement", got)
	}

	var tasks []api.Task
	s.ml.must(http.MethodPost, base+"/reconcile", nil, http.StatusOK, &tasks)
	if len(tasks) != 1 || tasks[0].ID != l.Task || tasks[0].State != api.TaskRunning {
		t.Errorf("reconcile: %+v", tasks)
	}
	// A batch session gets no offers to accept.
	var batch api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("b", 1, 1), http.StatusCreated, &batch)
	if got, _ := s.ml.call(http.MethodPost, "/v1/sessions/"+batch.ID+"/accept", api.Accept{Offer: o.ID}, nil); got != http.StatusConflict {
		t.Errorf("accept for a batch session: %d, want 409", got)
	}
	// Restored with its outstanding offers: a new stream gets them.
	offers := outstanding(s.cluster, sess.ID)
	if len(offers) != 1 {
		t.Fatalf("outstanding offers before the restart: %v, want one", offers)
	}
	s.restart()
	events, _ = s.ml.events(t, sess.ID)
	if got := next(t, events, "an outstanding offer", isOffer).Offer; got.ID != offers[0] {
		t.Errorf("offer %s after the restart, want %v", got.ID, offers)
	}
}

func outstanding(c *cluster, session string) []string {
	return inLoop(c, func(m *Master) []string {
		var out []string
		for id, o := range m.offers {
			if o.session == session {
				out = append(out, id)
			}
		}
		return out
	})
}
