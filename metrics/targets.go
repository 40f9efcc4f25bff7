package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TargetMisses counts the response targets missed so far, as the database records them.
type TargetMisses interface {
	TargetMisses(ctx context.Context) (uint64, error)
}

var targetMissesDesc = prometheus.NewDesc("supportbot_response_target_misses_total",
	"Waits that went past their response target (sla.first_response, sla.reply), all portals, since the database began.", nil, nil)

// WatchTargetMisses registers the counter of missed response targets, read from st
// at each scrape: like the service times, it agrees with the database on every
// replica and survives restarts.
func (m *Metrics) WatchTargetMisses(st TargetMisses) {
	m.registry.MustRegister(&missesCollector{st: st})
}

type missesCollector struct{ st TargetMisses }

func (c *missesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- targetMissesDesc }

func (c *missesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.st.TargetMisses(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(targetMissesDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(targetMissesDesc, prometheus.CounterValue, float64(n))
}
