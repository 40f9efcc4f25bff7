package metrics

import (
	"context"
	"time"

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
	m.registry.MustRegister(&keptCollector{st: st})
}

type keptCollector struct{ st KeptEvents }

func (c *keptCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keptEventsDesc }

func (c *keptCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.st.KeptEvents(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(keptEventsDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(keptEventsDesc, prometheus.GaugeValue, float64(n))
}
