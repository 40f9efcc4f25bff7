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
	m.registry.MustRegister(&fromStore{desc: targetMissesDesc, kind: prometheus.CounterValue,
		read: func(ctx context.Context) (float64, error) { n, err := st.TargetMisses(ctx); return float64(n), err }})
}

// fromStore is one number the database holds, read at each scrape (within 2 s).
type fromStore struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	read func(context.Context) (float64, error)
}

func (c *fromStore) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *fromStore) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, c.kind, v)
}
