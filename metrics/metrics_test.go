package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type backlog struct{}

func (backlog) OutboxStats(context.Context) (int, time.Time, error) {
	return 3, time.Now().Add(-time.Minute), nil
}

func TestLabelsStayBounded(t *testing.T) {
	m := New(backlog{})
	m.ObserveEvent("ONIMBOTMESSAGEADD", "processed")
	m.ObserveEvent("X_ATTACKER_CHOSEN_"+strings.Repeat("A", 100), "unknown")
	m.ObserveEvent("", "rejected")
	m.ObserveCall("batch", "<html>", time.Millisecond)
	m.ObserveCall("batch", "QUERY_LIMIT_EXCEEDED", time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`supportbot_events_total{outcome="processed",type="ONIMBOTMESSAGEADD"} 1`,
		`supportbot_events_total{outcome="unknown",type="other"} 1`,
		`supportbot_events_total{outcome="rejected",type="none"} 1`,
		`supportbot_rest_calls_total{method="batch",outcome="other"} 1`,
		`supportbot_rest_calls_total{method="batch",outcome="QUERY_LIMIT_EXCEEDED"} 1`,
		`supportbot_outbox_depth 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(text, "ATTACKER") {
		t.Error("a label value came from the request")
	}
}
