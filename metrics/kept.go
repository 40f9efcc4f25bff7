package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// KeptEvents counts the events kept until their portal confirms the author (app
// mode), as the database holds them.
type KeptEvents interface {
	KeptEvents(ctx context.Context) (int, error)
}

var keptEventsDesc = prometheus.NewDesc("supportbot_kept_events",
	"Events kept until their portal confirms the author (app mode), all portals: each is applied, refused, or given up after an hour.", nil, nil)

// WatchKeptEvents registers the gauge of kept events, read from st at each scrape:
// one that keeps growing is a portal that cannot confirm its users, whose questions
// wait (at most 1,000 a portal are kept; beyond that they are answered 503).
func (m *Metrics) WatchKeptEvents(st KeptEvents) {
	m.registry.MustRegister(&fromStore{desc: keptEventsDesc, kind: prometheus.GaugeValue,
		read: func(ctx context.Context) (float64, error) { n, err := st.KeptEvents(ctx); return float64(n), err }})
}
