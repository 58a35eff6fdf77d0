package scheduler

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
)

// offerTo offers an agent's free resources to a framework session if one
// of its pending tasks could run there; it reports whether it did.
func (c *Core) offerTo(s *session, a *agent) bool {
	for _, o := range a.offers {
		if o.session == s {
			return false
		}
	}
	avail := c.avail(a)
	tr := trial{avail: avail, gpuFree: a.gpuFree}
	usable, revocable := false, true
	for _, g := range s.groups {
		if g.pending() == 0 {
			continue
		}
		if _, rev, why := c.fit(s, g, a, &tr); why == "" {
			usable = true
			revocable = revocable && rev
		}
	}
	if !usable {
		return false
	}
	c.offerSeq++
	o := &offer{
		id: "o" + strconv.FormatUint(c.offerSeq, 10), seq: c.offerSeq, session: s, agent: a,
		res: avail, revocable: revocable, expires: c.now.Add(c.cfg.OfferTimeout).UnixNano(),
	}
	c.offers[o.id] = o
	c.offerQueue = append(c.offerQueue, o)
	a.offers = append(a.offers, o)
	s.offers++
	s.offered = s.offered.Add(avail)
	s.rekey(c.total)
	if c.cfg.OfferFanout == 1 {
		a.offered = a.offered.Add(avail)
		c.reindex(a, false)
	}
	var gpus []string
	for i, f := range a.gpuFree {
		if f > 0 {
			gpus = append(gpus, a.spec.GPUs[i].ID)
		}
	}
	c.ready.Offers = append(c.ready.Offers, Offer{ID: o.id, Session: s.spec.ID, Agent: a.spec.ID, Resources: avail, GPUs: gpus, Ports: a.freePorts(), Revocable: revocable})
	c.counters.OffersSent++
	return true
}

// dropOffer forgets an offer, giving back what it locked.
func (c *Core) dropOffer(o *offer) {
	if o.gone {
		return
	}
	o.gone = true
	delete(c.offers, o.id)
	a, s := o.agent, o.session
	if i := slices.Index(a.offers, o); i >= 0 {
		a.offers = slices.Delete(a.offers, i, i+1)
	}
	s.offers--
	s.offered = s.offered.Sub(o.res)
	s.rekey(c.total)
	if c.cfg.OfferFanout == 1 {
		a.offered = a.offered.Sub(o.res)
		c.reindex(a, false)
		c.freeEpoch++ // a gang may fit in what the offer locked
	}
	if s.heapIdx >= 0 {
		c.sheaps[s.consumer.idx].fix(s.heapIdx)
		c.reclass(s)
	}
}

// rescind withdraws an offer and offers the agent again.
func (c *Core) rescind(o *offer, reason string) {
	c.dropOffer(o)
	c.ready.Rescinds = append(c.ready.Rescinds, Rescind{Offer: o.id, Session: o.session.spec.ID, Reason: reason})
	c.counters.OffersRescinded++
	c.markDirty(o.agent)
}

// revalidateOffers rescinds the offers of an agent whose resources are no
// longer all there; what is left is offered again (the offer shrinks).
func (c *Core) revalidateOffers(a *agent, reason string) {
	free := a.free()
	if c.cfg.OfferFanout == 1 {
		if a.offered.Fits(free) {
			return
		}
	}
	for _, o := range slices.Clone(a.offers) {
		if !o.res.Fits(free) {
			c.rescind(o, reason)
		}
	}
}

func (c *Core) expireOffers() {
	now := c.now.UnixNano()
	i := 0
	for ; i < len(c.offerQueue); i++ {
		o := c.offerQueue[i]
		if o.gone {
			continue
		}
		if o.expires > now {
			break
		}
		c.rescind(o, "the offer timed out")
	}
	c.offerQueue = slices.Delete(c.offerQueue, 0, i)
}

// lookupOffer finds an outstanding offer. An offer that was made but is
// gone is a conflict, not an error: optimistic offers lose races.
func (c *Core) lookupOffer(id string) (*offer, bool, error) {
	if o := c.offers[id]; o != nil {
		return o, true, nil
	}
	seq, err := strconv.ParseUint(strings.TrimPrefix(id, "o"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "o") || seq == 0 || seq > c.offerSeq {
		return nil, false, errorf(api.ErrNotFound, "offer %s was never made", id)
	}
	return nil, false, nil
}

func (c *Core) accept(e OfferAccepted) error {
	o, ok, err := c.lookupOffer(e.Offer)
	if err != nil {
		return err
	}
	if !ok {
		c.conflict(e.Offer, "", "the offer was rescinded or timed out")
		return nil
	}
	s, a := o.session, o.agent
	total := 0
	for _, at := range e.Tasks {
		g := s.group(at.Group)
		switch {
		case g == nil:
			return errorf(api.ErrNotFound, "accept %s: session %s has no group %q", e.Offer, s.spec.ID, at.Group)
		case at.Count <= 0:
			return errorf(api.ErrInvalid, "accept %s: group %s: count %d is not positive", e.Offer, at.Group, at.Count)
		}
		total += at.Count
	}
	c.dropOffer(o)
	c.markDirty(a)
	if total == 0 {
		// Accepting nothing is declining with the default filter.
		c.filter(s, a, c.cfg.Refuse)
		c.counters.OffersDeclined++
		return nil
	}
	// Check every task against the agent as it is now; commit all or
	// nothing.
	tr := trial{avail: c.avail(a), gpuFree: slices.Clone(a.gpuFree)}
	type spot struct {
		g    *group
		gpus []int
		rev  bool
	}
	var spots []spot
	asked := map[*group]int{}
	for _, at := range e.Tasks {
		g := s.group(at.Group)
		if asked[g] += at.Count; asked[g] > g.pending() {
			c.conflict(o.id, s.spec.ID, "group "+g.spec.Name+" has only "+itoa(g.pending())+" pending tasks")
			return nil
		}
		for range at.Count {
			gpus, rev, why := c.fit(s, g, a, &tr)
			if why != "" {
				c.conflict(o.id, s.spec.ID, "agent "+a.spec.ID+": "+why)
				return nil
			}
			res := g.spec.Resources
			tr.avail = tr.avail.Sub(res)
			takeGPUs(tr.gpuFree, gpus, res[GPU])
			tr.extra = tr.extra.Add(res)
			if !rev {
				tr.extraOwned = tr.extraOwned.Add(res)
			}
			spots = append(spots, spot{g, gpus, rev})
		}
	}
	for _, sp := range spots {
		c.launch(s, sp.g, a, sp.gpus, sp.rev)
	}
	c.counters.OffersAccepted++
	c.requeue(s)
	return nil
}

func (c *Core) conflict(offerID, session, reason string) {
	c.ready.Conflicts = append(c.ready.Conflicts, Conflict{Offer: offerID, Session: session, Reason: reason})
	c.counters.Conflicts++
}

func (c *Core) decline(e OfferDeclined) error {
	if e.Refuse < 0 {
		return errorf(api.ErrInvalid, "decline %s: refuse %v is negative", e.Offer, e.Refuse)
	}
	o, ok, err := c.lookupOffer(e.Offer)
	if err != nil || !ok {
		return err // declining an offer that is gone changes nothing
	}
	c.dropOffer(o)
	refuse := e.Refuse
	if refuse == 0 {
		refuse = c.cfg.Refuse
	}
	c.filter(o.session, o.agent, refuse)
	c.counters.OffersDeclined++
	c.markDirty(o.agent)
	return nil
}

// filter keeps an agent from a session for d.
func (c *Core) filter(s *session, a *agent, d time.Duration) {
	if s.filters == nil {
		s.filters = map[int32]time.Time{}
	}
	until := c.now.Add(d)
	s.filters[a.idx] = until
	c.filterSeq++
	c.filterq.push(&filterExpiry{seq: c.filterSeq, at: until, agent: a.idx, session: s})
}

// expireFilters offers again the agents whose filters lapsed.
func (c *Core) expireFilters() {
	for c.filterq.len() > 0 && !c.filterq.peek().at.After(c.now) {
		f := c.filterq.pop()
		if c.sessions[f.session.spec.ID] != f.session {
			continue // the session finished
		}
		if until, ok := f.session.filters[f.agent]; ok && !until.After(c.now) {
			delete(f.session.filters, f.agent)
			c.markDirty(c.agents[f.agent])
		}
	}
}
