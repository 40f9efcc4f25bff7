package bot

import (
	"maps"
	"slices"
	"time"

	"supportbot/storage"
)

// targetFigures are /stats' lines of issue 22: the share of answers within their
// response target (in working time), and per agent the dialogs they own now, their
// answers in the window and their share within target.
func (t *turn) targetFigures(since, until time.Time) ([]string, error) {
	answered, err := t.tx.AnsweredTimes(t.portal.ID, since, until)
	if err != nil {
		return nil, err
	}
	desk, err := t.tx.DeskStates(t.portal.ID)
	if err != nil {
		return nil, err
	}
	type tally struct{ owned, within, measured int }
	agents := map[int64]*tally{}
	of := func(id int64) *tally {
		if agents[id] == nil {
			agents[id] = &tally{}
		}
		return agents[id]
	}
	for _, s := range desk {
		if s.Owner != 0 {
			of(s.Owner).owned++
		}
	}
	// An answer that ends the first response also ends the service times' reply from
	// the question; the targets count it once, as the first response it is.
	first := map[int64]bool{}
	for _, a := range answered {
		first[a.EventID] = first[a.EventID] || a.Kind == storage.TimeFirstResponse
	}
	answers := map[int64]map[int64]bool{} // agent → their answers' events
	byKind := map[string]*tally{}
	var lines []string
	for _, a := range answered {
		if answers[a.Agent] == nil {
			answers[a.Agent] = map[int64]bool{}
		}
		answers[a.Agent][a.EventID] = true
		of(a.Agent)
		target := t.b.target(a.Kind)
		if target <= 0 || (a.Kind == storage.TimeReply && first[a.EventID]) {
			continue
		}
		in := 0
		if t.b.cfg.Hours.Between(a.Started, a.Ended) <= target {
			in = 1
		}
		if byKind[a.Kind] == nil {
			byKind[a.Kind] = &tally{}
		}
		for _, x := range []*tally{byKind[a.Kind], of(a.Agent)} {
			x.within += in
			x.measured++
		}
	}
	share := func(x *tally) string {
		if x == nil || x.measured == 0 {
			return ""
		}
		return t.t.StatsWithin((x.within*200+x.measured)/(2*x.measured), x.within, x.measured)
	}
	for _, k := range []struct{ kind, name string }{{storage.TimeFirstResponse, t.t.StatsFirst}, {storage.TimeReply, t.t.StatsReply}} {
		if s := share(byKind[k.kind]); s != "" {
			lines = append(lines, k.name+": "+s)
		}
	}
	if len(agents) == 0 {
		return lines, nil
	}
	lines = append(lines, t.t.StatsAgentsHeader)
	for _, id := range slices.Sorted(maps.Keys(agents)) {
		lines = append(lines, t.t.StatsAgent(ownerName(id), agents[id].owned, len(answers[id]), share(agents[id])))
	}
	return lines, nil
}
