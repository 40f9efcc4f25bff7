package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
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

// TestFetchLagGrowsWhilePollsFail: after a successful poll of an empty queue the lag
// is 0; while polls fail it grows from that poll, scrape after scrape, and a success
// brings it back.
func TestFetchLagGrowsWhilePollsFail(t *testing.T) {
	m := New(nil)
	lag := func() float64 {
		t.Helper()
		for _, line := range strings.Split(scrape(m), "\n") {
			if v, ok := strings.CutPrefix(line, `supportbot_fetch_lag_seconds{portal="7"} `); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		t.Fatal("no supportbot_fetch_lag_seconds for portal 7")
		return 0
	}
	m.ObservePoll(7, true, 0)
	if l := lag(); l != 0 {
		t.Fatalf("lag %v after a poll of an empty queue", l)
	}
	m.ObservePoll(7, false, 0)
	first := lag()
	if second := lag(); first <= 0 || second <= first {
		t.Fatalf("lag %v, then %v, while polls fail", first, second)
	}
	m.ObservePoll(7, true, 2*time.Second)
	if l := lag(); l != 2 {
		t.Fatalf("lag %v after a poll that brought a 2 s old event", l)
	}
}
