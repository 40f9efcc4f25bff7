// Package metrics holds supportbot's Prometheus metrics: what arrived, what was sent,
// what waits. The other packages report through small interfaces; only this one and
// the route that serves /metrics know Prometheus.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outbox reports the outbox's backlog when /metrics is scraped.
type Outbox interface {
	OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error)
}

// Metrics is every metric, registered on its own registry.
type Metrics struct {
	registry *prometheus.Registry

	events         *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	restCalls      *prometheus.CounterVec
	restDuration   *prometheus.HistogramVec
	rateLimitWaits prometheus.Counter
	rateLimitTime  prometheus.Counter
	deliveries     *prometheus.CounterVec
	retries        *prometheus.CounterVec
	maybeDup       *prometheus.CounterVec
	recordRetries  prometheus.Counter
	fetchLag       *lagCollector
	fetchSuccess   *prometheus.GaugeVec
	fetchFailures  *prometheus.CounterVec
	batchRefused   prometheus.Counter
	fetchAnomalies *prometheus.CounterVec
}

// New registers the metrics; outbox, if not nil, is asked for the backlog on scrape.
func New(outbox Outbox) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_events_total",
			Help: "Events received on /bitrix/events or fetched from the portal's queue, by type and outcome (processed, duplicate, ignored, unknown, rejected, failed).",
		}, []string{"type", "outcome"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "supportbot_http_request_duration_seconds",
			Help:    "HTTP request latency, by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "status"}),
		restCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_rest_calls_total",
			Help: "HTTP requests to Bitrix24's REST API, by method (batch for a batch) and outcome (ok, the error code, transport).",
		}, []string{"method", "outcome"}),
		restDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "supportbot_rest_call_duration_seconds",
			Help:    "Duration of requests to Bitrix24's REST API, by method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"}),
		rateLimitWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "supportbot_rate_limit_waits_total",
			Help: "Requests that waited for room in the portal's leaky bucket.",
		}),
		rateLimitTime: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "supportbot_rate_limit_wait_seconds_total",
			Help: "Time spent waiting for room in the portal's leaky bucket.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_outbox_deliveries_total",
			Help: "Outbox entries finished, by method and outcome (delivered, merged, failed, expired).",
		}, []string{"method", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_outbox_retries_total",
			Help: "Attempts that failed for a passing reason and were scheduled again, by method and reason.",
		}, []string{"method", "reason"}),
		maybeDup: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_outbox_maybe_duplicates_total",
			Help: "Non-idempotent calls sent again after an attempt that may have run (a timeout after sending): the only case where the portal may show a reply twice.",
		}, []string{"method"}),
		recordRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "supportbot_outbox_record_retries_total",
			Help: "Tries again to record the outcome of requests that ran, while the database was unavailable.",
		}),
		fetchLag: &lagCollector{portals: map[string]lagState{}, start: time.Now(), desc: prometheus.NewDesc("supportbot_fetch_lag_seconds",
			"Fetch mode: how far behind the portal's event queue the bot is: the age of the oldest event the last poll brought "+
				"(0 for an empty queue), growing from the last successful poll while polls fail.", []string{"portal"}, nil)},
		fetchSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "supportbot_fetch_last_success_timestamp_seconds",
			Help: "Fetch mode: when the portal's event queue was last polled successfully (Unix time).",
		}, []string{"portal"}),
		fetchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_fetch_failures_total",
			Help: "Fetch mode: polls of the portal's event queue that failed.",
		}, []string{"portal"}),
		fetchAnomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportbot_fetch_offset_anomalies_total",
			Help: "Fetch mode: nextOffsets the poller did not trust: beyond the page's last event (beyond), or not moving past a page of events (stuck).",
		}, []string{"portal", "kind"}),
		batchRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "supportbot_v2_batch_refused_total",
			Help: "Times a portal was found to refuse imbot.v2 methods inside batch; its calls then go one a request for a day.",
		}),
	}
	m.registry.MustRegister(m.batchRefused, m.fetchAnomalies, m.events, m.httpDuration, m.restCalls, m.restDuration, m.rateLimitWaits,
		m.rateLimitTime, m.deliveries, m.retries, m.maybeDup, m.recordRetries, m.fetchLag, m.fetchSuccess, m.fetchFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if outbox != nil {
		m.registry.MustRegister(&outboxCollector{outbox: outbox,
			depth: prometheus.NewDesc("supportbot_outbox_depth", "Outbox entries waiting to be sent.", nil, nil),
			age:   prometheus.NewDesc("supportbot_outbox_oldest_age_seconds", "Age of the oldest entry waiting to be sent (0 when none).", nil, nil),
		})
	}
	return m
}

// Handler serves the metrics in Prometheus' format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// knownEvents keeps the event label bounded: the type comes from the request.
var knownEvents = map[string]bool{
	"ONIMBOTMESSAGEADD": true, "ONIMBOTMESSAGEUPDATE": true, "ONIMBOTMESSAGEDELETE": true, "ONIMCOMMANDADD": true,
	"ONIMBOTJOINCHAT": true, "ONIMBOTDELETE": true, "ONAPPINSTALL": true, "ONAPPUNINSTALL": true,
	"ONIMBOTV2MESSAGEADD": true, "ONIMBOTV2MESSAGEUPDATE": true, "ONIMBOTV2MESSAGEDELETE": true, "ONIMBOTV2COMMANDADD": true,
	"ONIMBOTV2JOINCHAT": true, "ONIMBOTV2DELETE": true, "ONIMBOTV2REACTIONCHANGE": true, "ONIMBOTV2CONTEXTGET": true,
}

// ObserveEvent counts an event on /bitrix/events.
func (m *Metrics) ObserveEvent(eventType, outcome string) {
	switch {
	case eventType == "":
		eventType = "none" // not decoded
	case !knownEvents[eventType]:
		eventType = "other"
	}
	m.events.WithLabelValues(eventType, outcome).Inc()
}

// ObservePoll implements poller.Observer.
func (m *Metrics) ObservePoll(portalID int64, ok bool, lag time.Duration) {
	portal := strconv.FormatInt(portalID, 10)
	m.fetchLag.observe(portal, ok, lag)
	if !ok {
		m.fetchFailures.WithLabelValues(portal).Inc()
		return
	}
	m.fetchSuccess.WithLabelValues(portal).SetToCurrentTime()
}

// ObserveOffsetAnomaly implements poller.Observer.
func (m *Metrics) ObserveOffsetAnomaly(portalID int64, kind string) {
	m.fetchAnomalies.WithLabelValues(strconv.FormatInt(portalID, 10), kind).Inc()
}

// ForgetPortal implements poller.Observer: a portal no longer polled leaves no gauges behind.
func (m *Metrics) ForgetPortal(portalID int64) {
	portal := strconv.FormatInt(portalID, 10)
	m.fetchLag.forget(portal)
	m.fetchSuccess.DeleteLabelValues(portal)
	m.fetchFailures.DeleteLabelValues(portal)
	m.fetchAnomalies.DeletePartialMatch(prometheus.Labels{"portal": portal})
}

// ObserveHTTP records one request's latency.
func (m *Metrics) ObserveHTTP(route string, status int, d time.Duration) {
	m.httpDuration.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

// ObserveCall implements bitrix24.Observer.
func (m *Metrics) ObserveCall(method, outcome string, d time.Duration) {
	m.restCalls.WithLabelValues(method, boundCode(outcome)).Inc()
	m.restDuration.WithLabelValues(method).Observe(d.Seconds())
}

// ObserveRateLimitWait implements bitrix24.Observer.
func (m *Metrics) ObserveRateLimitWait(d time.Duration) {
	m.rateLimitWaits.Inc()
	m.rateLimitTime.Add(d.Seconds())
}

// ObserveDelivery implements delivery.Observer.
func (m *Metrics) ObserveDelivery(method, outcome string) {
	m.deliveries.WithLabelValues(method, outcome).Inc()
}

// ObserveRetry implements delivery.Observer.
func (m *Metrics) ObserveRetry(method, reason string) {
	m.retries.WithLabelValues(method, boundCode(reason)).Inc()
}

// ObserveMaybeDuplicate implements delivery.Observer.
func (m *Metrics) ObserveMaybeDuplicate(method string) {
	m.maybeDup.WithLabelValues(method).Inc()
}

// ObserveRecordRetry: delivery tries again to record outcomes (database unavailable).
func (m *Metrics) ObserveRecordRetry() { m.recordRetries.Inc() }

// ObserveBatchRefused implements delivery.Observer.
func (m *Metrics) ObserveBatchRefused() { m.batchRefused.Inc() }

// boundCode keeps error-code labels bounded: codes come from the portal, or from
// whatever answers in its place.
func boundCode(code string) string {
	if len(code) > 40 || strings.IndexFunc(code, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_'
	}) >= 0 {
		return "other"
	}
	return code
}

// lagCollector is supportbot_fetch_lag_seconds, computed when scraped: while polls
// fail (a hung one fails at the client's timeout) the bot falls further behind
// however long it has been since, not just when a poll ends.
type lagCollector struct {
	desc    *prometheus.Desc
	start   time.Time // a portal never polled successfully is behind since then
	mu      sync.Mutex
	portals map[string]lagState
}

type lagState struct {
	lag       time.Duration // the age of the oldest event the last successful poll brought
	successAt time.Time
	failing   bool // the last poll failed
}

func (c *lagCollector) observe(portal string, ok bool, lag time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, seen := c.portals[portal]
	switch {
	case ok:
		st = lagState{lag: lag, successAt: time.Now()}
	case !seen:
		st = lagState{successAt: c.start, failing: true}
	default:
		st.failing = true
	}
	c.portals[portal] = st
}

func (c *lagCollector) forget(portal string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.portals, portal)
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for portal, st := range c.portals {
		lag := st.lag
		if st.failing {
			lag += time.Since(st.successAt)
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, lag.Seconds(), portal)
	}
}

type outboxCollector struct {
	outbox     Outbox
	depth, age *prometheus.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pending, oldest, err := c.outbox.OutboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}
