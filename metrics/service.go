package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServiceTimes reports the service times measured so far, as a histogram: for each
// bound how many were at most that long, how many in all and their sum in seconds.
// The store answers from the same rows /stats reads.
type ServiceTimes interface {
	ServiceTimeBuckets(ctx context.Context, kind string, bounds []float64) (buckets []uint64, count uint64, sum float64, err error)
}

// serviceBuckets are the service-time histograms' upper bounds, in seconds: from a
// minute to a month, since support answers in minutes and resolves in days.
var serviceBuckets = []float64{
	60, 5 * 60, 15 * 60, 30 * 60, // minutes
	3600, 2 * 3600, 4 * 3600, 8 * 3600, // hours
	86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, // days
}

// serviceHistograms name the storage's kinds of service time (storage.Time*).
var serviceHistograms = []struct{ kind, name, help string }{
	{"first_response", "supportbot_first_response_seconds",
		"First response time: from a dialog's opening or reopening to the first agent answer after it, all portals, since the database began."},
	{"reply", "supportbot_reply_seconds",
		"Reply time: from the first client message still unanswered to the agent answer after it, all portals, since the database began."},
	{"resolution", "supportbot_resolution_seconds",
		"Resolution time: from a dialog's opening or reopening to its resolve or auto-close, all portals, since the database began."},
}

// WatchServiceTimes registers the histograms of first response, reply and
// resolution times, read from st at each scrape. They are built from the database,
// not counted in memory, so they agree with /stats, survive restarts and are the same
// on every replica.
func (m *Metrics) WatchServiceTimes(st ServiceTimes) {
	c := &serviceCollector{st: st}
	for _, h := range serviceHistograms {
		c.descs = append(c.descs, prometheus.NewDesc(h.name, h.help, nil, nil))
	}
	m.registry.MustRegister(c)
}

type serviceCollector struct {
	st    ServiceTimes
	descs []*prometheus.Desc // in the order of serviceHistograms
}

func (c *serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *serviceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i, h := range serviceHistograms {
		buckets, count, sum, err := c.st.ServiceTimeBuckets(ctx, h.kind, serviceBuckets)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.descs[i], err)
			continue
		}
		cumulative := make(map[float64]uint64, len(serviceBuckets))
		for j, b := range serviceBuckets {
			cumulative[b] = buckets[j]
		}
		ch <- prometheus.MustNewConstHistogram(c.descs[i], count, sum, cumulative)
	}
}
