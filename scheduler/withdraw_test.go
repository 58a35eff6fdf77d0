package scheduler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stepAll feeds events and returns the tasks noticed, withdrawn and killed
// on the way, in order.
func stepAll(t *testing.T, c *Core, evs ...Event) (noticed, withdrawn, killed []string) {
	t.Helper()
	for _, ev := range evs {
		r := must(t, c, ev)
		for _, n := range r.Notices {
			noticed = append(noticed, n.Task)
		}
		for _, w := range r.Withdrawals {
			withdrawn = append(withdrawn, w.Task)
		}
		for _, k := range r.Kills {
			killed = append(killed, k.Task)
		}
		if err := c.Verify(); err != nil {
			t.Fatalf("after %T: %v", ev, err)
		}
	}
	return noticed, withdrawn, killed
}

// lentOut is an agent of four tasks' room that a borrower fills, then an
// owner of owned asks for want tasks of the same size: the reclaim round at
// the last tick notices the borrower's tasks, with a 10s grace period.
func lentOut(owned Resources, want int) []Event {
	task := Res(1000, 2<<30)
	return []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{{Name: "owner", Owned: owned, Grace: 10 * time.Second}, {Name: "borrower"}}},
		AgentAdded{Agent: AgentSpec{ID: "a", Resources: Res(4000, 8<<30)}},
		SessionSubmitted{Session: SessionSpec{ID: "b", Consumer: "borrower", Groups: []TaskGroup{{Name: "g", Resources: task, Count: 4}}}},
		Tick{Now: t0.Add(time.Second)},
		SessionSubmitted{Session: SessionSpec{ID: "o", Consumer: "owner", Groups: []TaskGroup{{Name: "g", Resources: task, Count: want}}}},
		Tick{Now: t0.Add(2 * time.Second)},
	}
}

// An owner whose demand shrinks before the grace period ends withdraws the
// notices it no longer needs, newest first, and the borrower's tasks keep
// running past the deadline.
func TestWithdrawReclaim(t *testing.T) {
	c := New(Config{})
	noticed, withdrawn, killed := stepAll(t, c, lentOut(Res(4000, 8<<30), 2)...)
	if len(noticed) != 2 || len(withdrawn)+len(killed) != 0 {
		t.Fatalf("noticed %v, withdrawn %v, killed %v: want two notices", noticed, withdrawn, killed)
	}
	// One task less: the newer notice goes.
	_, withdrawn, killed = stepAll(t, c, SessionUpdated{Session: "o", Group: "g", Count: 1}, Tick{Now: t0.Add(3 * time.Second)})
	if diff := cmp.Diff(noticed[1:], withdrawn); diff != "" || len(killed) != 0 {
		t.Fatalf("after the owner shrank: withdrawn (-want +got):\n%s\nkilled %v", diff, killed)
	}
	// The owner goes: the other goes too, and nothing is killed at the
	// deadline.
	_, withdrawn, killed = stepAll(t, c, SessionFinished{Session: "o"}, Tick{Now: t0.Add(3 * time.Second)}, Tick{Now: t0.Add(time.Minute)})
	if diff := cmp.Diff(noticed[:1], withdrawn); diff != "" || len(killed) != 0 {
		t.Fatalf("after the owner finished: withdrawn (-want +got):\n%s\nkilled %v", diff, killed)
	}
	if st := c.Counters(); st.Withdrawn != 2 || st.Preempted != 0 {
		t.Errorf("counters %+v: want 2 withdrawn, none preempted", st)
	}
}

// A notice the claimant still needs stays: the owner's demand shrinks but
// still covers both claims, which its owned share caps.
func TestWithdrawKeepsWhatIsNeeded(t *testing.T) {
	c := New(Config{})
	noticed, _, _ := stepAll(t, c, lentOut(Res(2000, 4<<30), 4)...)
	if len(noticed) != 2 {
		t.Fatalf("noticed %v: want two, the owned share", noticed)
	}
	_, withdrawn, killed := stepAll(t, c, SessionUpdated{Session: "o", Group: "g", Count: 3}, Tick{Now: t0.Add(3 * time.Second)}, Tick{Now: t0.Add(time.Minute)})
	if len(withdrawn) != 0 || !cmp.Equal(killed, noticed) {
		t.Fatalf("noticed %v, withdrawn %v, killed %v: want the noticed killed at the deadline", noticed, withdrawn, killed)
	}
}

// outranked is an agent that a session of priority low fills, then one
// of priority high of the same consumer asks for a task: the preemption
// round at the last tick notices one, with a 10s grace period.
func outranked(low, high int) []Event {
	task := Res(1000, 2<<30)
	return []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{{Name: "team", Grace: 10 * time.Second}}},
		AgentAdded{Agent: AgentSpec{ID: "a", Resources: Res(4000, 8<<30)}},
		SessionSubmitted{Session: SessionSpec{ID: "low", Consumer: "team", Priority: low, Groups: []TaskGroup{{Name: "g", Resources: task, Count: 4}}}},
		Tick{Now: t0.Add(time.Second)},
		SessionSubmitted{Session: SessionSpec{ID: "high", Consumer: "team", Priority: high, Groups: []TaskGroup{{Name: "g", Resources: task, Count: 1}}}},
		Tick{Now: t0.Add(2 * time.Second)},
	}
}

// A high-priority session that finishes before its preemption's deadline
// withdraws it.
func TestWithdrawPreemption(t *testing.T) {
	c := New(Config{})
	noticed, withdrawn, killed := stepAll(t, c, outranked(0, 5)...)
	if len(noticed) != 1 || len(withdrawn)+len(killed) != 0 {
		t.Fatalf("noticed %v, withdrawn %v, killed %v: want one preemption notice", noticed, withdrawn, killed)
	}
	_, withdrawn, killed = stepAll(t, c, SessionFinished{Session: "high"}, Tick{Now: t0.Add(3 * time.Second)}, Tick{Now: t0.Add(time.Minute)})
	if !cmp.Equal(withdrawn, noticed) || len(killed) != 0 {
		t.Fatalf("withdrawn %v, killed %v: want %v withdrawn and nothing killed", withdrawn, killed, noticed)
	}
}

// A preemption the claimant still waits for stays, whatever the sign of
// the priorities.
func TestPreemptionNotWithdrawnWhileWanted(t *testing.T) {
	for _, prio := range []struct{ low, high int }{{0, 5}, {-2, -1}, {-1, 0}} {
		c := New(Config{})
		noticed, withdrawn, killed := stepAll(t, c, append(outranked(prio.low, prio.high),
			Tick{Now: t0.Add(3 * time.Second)},
			Tick{Now: t0.Add(time.Minute)})...)
		if len(noticed) != 1 || len(withdrawn) != 0 || !cmp.Equal(killed, noticed) {
			t.Errorf("priorities %+v: noticed %v, withdrawn %v, killed %v: want the noticed task killed at the deadline", prio, noticed, withdrawn, killed)
		}
	}
}
