package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
	"supportbot/storage"
	"supportbot/testwait"
)

// renameReplyRE reads the client and sequence number back from a rename's reply:
// every event of the delivery tests is "rename N r-<client>-<k>".
var renameReplyRE = regexp.MustCompile(`renamed: “r-(\d+)-(\d+)”`)

// openOneEach has every client open one dialog and returns client → dialog number.
func openOneEach(t *testing.T, post func([]byte), dbPath string, clients []int64) map[int64]int {
	t.Helper()
	for _, c := range clients {
		post(privateMessage(c, "en", "First question"))
	}
	waitIdle(t, dbPath)
	numbers := map[int64]int{}
	for _, d := range dialogsAt(t, dbPath) {
		numbers[d.ClientID] = d.Number
	}
	if len(numbers) != len(clients) {
		t.Fatalf("%d dialogs for %d clients", len(numbers), len(clients))
	}
	return numbers
}

func clientIDs(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	return ids
}

func adminsEnv(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return "SUPPORTBOT_ACCESS_ADMINS=" + strings.Join(s, ",")
}

// checkReplies checks the renames' replies at the portal: each of want delivered, in
// order per chat, and no more duplicates than the bot counted as "may have run". A
// reply's first arrival is the one that counts for the order: a request that may
// have run is sent again whole, so a run of replies can arrive twice ("8 9 8 9"),
// each repeat counted, and nothing arrives before what precedes it.
func checkReplies(t *testing.T, portal *b24test.Portal, want map[int64][]int, allowedDuplicates int) {
	t.Helper()
	got := map[int64][]int{}
	for _, m := range portal.AllMessages() {
		match := renameReplyRE.FindStringSubmatch(m.Text)
		if match == nil {
			continue
		}
		client, _ := strconv.ParseInt(match[1], 10, 64)
		k, _ := strconv.Atoi(match[2])
		if m.DialogID != match[1] {
			t.Fatalf("reply for client %d went to %s", client, m.DialogID)
		}
		got[client] = append(got[client], k)
	}
	duplicates := 0
	for client, ks := range want {
		seq := got[client]
		seen := map[int]int{}
		last := -1 // the latest first arrival
		for _, k := range seq {
			seen[k]++
			switch {
			case seen[k] > 1:
				duplicates++
			case k < last:
				t.Fatalf("client %d: replies out of order: %v", client, seq)
			default:
				last = k
			}
		}
		for _, k := range ks {
			if seen[k] == 0 {
				t.Fatalf("client %d: reply %d never arrived (got %v)", client, k, seq)
			}
		}
	}
	if duplicates > allowedDuplicates {
		t.Fatalf("%d duplicate replies, but only %d sends were counted as may-have-run", duplicates, allowedDuplicates)
	}
	t.Logf("%d duplicates, %d counted as may-have-run", duplicates, allowedDuplicates)
}

// metricValue sums the samples of a metric on /metrics whose labels contain all of
// labels.
func metricValue(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// TestDeliveryUnderFaults: with 30% of the portal's answers failing in every way it
// fails, 500 events that each need a reply end with every reply delivered, in order
// per chat, and duplicates only where the bot counted a call that may have run.
func TestDeliveryUnderFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	portal := b24test.New(t)
	clients := clientIDs(50)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "faults.db"), adminsEnv(clients))
	numbers := openOneEach(t, b.mustPost, b.dbPath, clients)

	portal.InjectFaults(b24test.FaultPlan{Share: 0.3, Seed: 42, SlowDelay: 300 * time.Millisecond})
	want := map[int64][]int{}
	for k := 0; k < 10; k++ {
		for _, c := range clients {
			b.mustPost(privateMessage(c, "en", fmt.Sprintf("rename %d r-%d-%d", numbers[c], c, k)))
			want[c] = append(want[c], k)
		}
	}
	waitIdleWithin(t, 3*time.Minute, b.dbPath)
	if n := countOutbox(t, b.dbPath, storage.OutboxFailed); n != 0 {
		t.Fatalf("%d entries given up", n)
	}
	faults := portal.FaultCounts()
	total := 0
	for _, n := range faults {
		total += n
	}
	if total < 5 {
		t.Fatalf("only %d faults injected: the test proves nothing", total)
	}
	t.Logf("faults injected: %v", faults)
	dups := int(metricValue(t, b.url, "supportbot_outbox_maybe_duplicates_total"))
	checkReplies(t, portal, want, dups)
	if r := metricValue(t, b.url, "supportbot_outbox_retries_total"); r == 0 {
		t.Error("no retries counted")
	}
	// The titles reached the portal too, last one last.
	chatOf := map[int64]int64{}
	for _, d := range dialogsAt(t, b.dbPath) {
		chatOf[d.ClientID] = d.ChatID
	}
	for _, c := range clients[:5] {
		if ch, _ := portal.Chat(chatOf[c]); ch.Title != fmt.Sprintf("r-%d-9", c) {
			t.Errorf("client %d: chat title %q", c, ch.Title)
		}
	}
}

// TestKillNineLosesNothing: the binary is killed with SIGKILL in the middle of a load
// of events; restarted on the same database it processes every event that got 200 and
// delivers every reply it decided to send.
func TestKillNineLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	portal := b24test.New(t)
	portal.SetRateLimit(50, 100)
	dir := t.TempDir()
	clients := clientIDs(20)
	env := []string{
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + portal.WebhookURL(),
		"SUPPORTBOT_BITRIX_APPLICATION_TOKEN=" + testToken,
		"SUPPORTBOT_BITRIX_RATE_PER_SECOND=50",
		"SUPPORTBOT_BITRIX_BURST=100",
		adminsEnv(clients),
		"SUPPORTBOT_SUPPORT_AGENTS=50",
	}
	p := startBinary(t, dir, env)
	dbPath := filepath.Join(dir, "supportbot.db")
	post := func(body []byte) {
		if s, _, err := b24test.Post(context.Background(), p.url()+"/bitrix/events", body); err != nil || s != 200 {
			t.Fatalf("set-up event: %d %v", s, err)
		}
	}
	numbers := openOneEach(t, post, dbPath, clients)

	// Slow the portal down so replies pile up in the outbox when the kill comes.
	portal.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: 50 * time.Millisecond})
	var mu sync.Mutex
	acked := map[int64][]int{}
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for i, c := range clients {
		wg.Go(func() {
			for k := 0; k < 30; k++ {
				body := privateMessage(c, "en", fmt.Sprintf("rename %d r-%d-%d", numbers[c], c, k))
				status, _, err := b24test.Post(context.Background(), p.url()+"/bitrix/events", body)
				if err != nil {
					return // the process is gone
				}
				if status == http.StatusOK {
					mu.Lock()
					acked[c] = append(acked[c], k)
					mu.Unlock()
				}
				if i == 0 && k == 15 {
					p.cmd.Process.Signal(syscall.SIGKILL)
					close(killed)
					return
				}
			}
		})
	}
	<-killed
	wg.Wait()
	<-p.done
	total := 0
	for _, ks := range acked {
		total += len(ks)
	}
	pendingAtKill := countOutbox(t, dbPath, storage.OutboxPending)
	t.Logf("%d events acknowledged before the kill; %d replies pending in the outbox", total, pendingAtKill)
	if pendingAtKill == 0 {
		t.Fatal("nothing was pending at the kill: the test proves nothing")
	}

	portal.InjectFaults(b24test.FaultPlan{})
	p2 := startBinary(t, dir, env)
	waitIdle(t, dbPath)
	if n := countOutbox(t, dbPath, "") - countOutbox(t, dbPath, storage.OutboxDone); n != 0 {
		t.Fatalf("%d outbox entries not delivered after the restart", n)
	}
	// Every acknowledged event was processed (its key is recorded) and its reply arrived.
	if recorded := processedEvents(t, dbPath); recorded < total+len(clients) {
		t.Fatalf("%d events recorded, %d acknowledged", recorded, total+len(clients))
	}
	// Calls under way at the kill were marked in flight: resent after the restart,
	// they are counted as may-have-run, like a timeout.
	checkReplies(t, portal, acked, int(metricValue(t, p2.url(), "supportbot_outbox_maybe_duplicates_total")))
	p2.cmd.Process.Signal(syscall.SIGTERM)
	<-p2.done
}

// TestMetrics: /metrics exposes events by type and outcome, HTTP latency, outbox depth
// and age, REST calls by method and outcome, rate-limit waits, retries and maybe-duplicates.
func TestMetrics(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	portal.SetRateLimit(1000, 3) // a tiny bucket: the bot must wait for it
	// 1 a second, 2 in the bucket: the bot's first three calls (a chat and two batches)
	// wait for it however slow the machine is; at 20 a second they did only when they
	// came within 100 ms, and under load they did not.
	b := startBot(t, portal, filepath.Join(t.TempDir(), "metrics.db"), "SUPPORTBOT_BITRIX_RATE_PER_SECOND=1", "SUPPORTBOT_BITRIX_BURST=3")
	ev := privateMessage(client, "en", "A question")
	b.mustPost(ev)
	b.mustPost(ev)                                                  // duplicate
	b.post(b24test.Event("v1/onimbotmessageadd-private.form", nil)) // the fixture's token is wrong: rejected
	for i := 0; i < 4; i++ {
		b.mustPost(privateMessage(client, "en", "help"))
	}
	waitIdle(t, b.dbPath)
	portal.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultDropAfter}})
	b.mustPost(privateMessage(client, "en", "help"))
	testwait.For(t, "a retry", func() bool { return metricValue(t, b.url, "supportbot_outbox_retries_total") > 0 })
	if depth := metricValue(t, b.url, "supportbot_outbox_depth"); depth != 1 {
		t.Errorf("outbox depth %v during the outage, want 1", depth)
	}
	if age := metricValue(t, b.url, "supportbot_outbox_oldest_age_seconds"); age <= 0 {
		t.Errorf("oldest age %v during the outage", age)
	}
	portal.InjectFaults(b24test.FaultPlan{})
	waitIdle(t, b.dbPath)

	checks := []struct {
		name   string
		labels []string
	}{
		{"supportbot_events_total", []string{`type="ONIMBOTMESSAGEADD"`, `outcome="processed"`}},
		{"supportbot_events_total", []string{`type="ONIMBOTMESSAGEADD"`, `outcome="duplicate"`}},
		{"supportbot_events_total", []string{`type="ONIMBOTMESSAGEADD"`, `outcome="rejected"`}},
		{"supportbot_http_request_duration_seconds_count", []string{`route="/bitrix/events"`, `status="200"`}},
		{"supportbot_http_request_duration_seconds_count", []string{`route="/bitrix/events"`, `status="401"`}},
		{"supportbot_rest_calls_total", []string{`method="imbot.chat.add"`, `outcome="ok"`}},
		{"supportbot_rest_calls_total", []string{`outcome="transport"`}},
		{"supportbot_rate_limit_waits_total", nil},
		{"supportbot_rate_limit_wait_seconds_total", nil},
		{"supportbot_outbox_retries_total", []string{`method="imbot.message.add"`, `reason="transport"`}},
		{"supportbot_outbox_maybe_duplicates_total", []string{`method="imbot.message.add"`}},
		{"supportbot_outbox_deliveries_total", []string{`outcome="delivered"`}},
	}
	for _, c := range checks {
		if v := metricValue(t, b.url, c.name, c.labels...); v <= 0 {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
	if depth := metricValue(t, b.url, "supportbot_outbox_depth"); depth != 0 {
		t.Errorf("outbox depth %v after draining", depth)
	}
	resp, err := http.Get(b.url + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), testToken) || strings.Contains(string(body), portal.WebhookURL()) {
			t.Error("a secret reached /metrics")
		}
	}
}

// TestShutdownFinishesCallsInFlight: SIGTERM during a slow call to the portal stops
// taking events, lets the call finish and records it, and exits within 10 s.
func TestShutdownFinishesCallsInFlight(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	dir := t.TempDir()
	p := startBinary(t, dir, []string{
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + portal.WebhookURL(),
		"SUPPORTBOT_BITRIX_APPLICATION_TOKEN=" + testToken,
		"SUPPORTBOT_ACCESS_ADMINS=27",
	})
	portal.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: 2 * time.Second})
	if s, _, err := b24test.Post(context.Background(), p.url()+"/bitrix/events", privateMessage(27, "en", "help")); err != nil || s != 200 {
		t.Fatalf("event: %d %v", s, err)
	}
	portal.WaitCalls(t, "imbot.message.add", 1, 5*time.Second) // it ran; the answer is held
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	testwait.For(t, "the server to stop listening", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.url(), "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if _, _, err := b24test.Post(context.Background(), p.url()+"/bitrix/events", privateMessage(27, "en", "help")); err == nil {
		t.Error("an event was taken after SIGTERM")
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit")
	}
	if d := time.Since(start); d > 10*time.Second || d < 1500*time.Millisecond {
		t.Fatalf("exit after %v: want the held call (2 s) finished, and under 10 s", d)
	}
	dbPath := filepath.Join(dir, "supportbot.db")
	entries := outboxAt(t, dbPath)
	if len(entries) != 1 || entries[0].State != storage.OutboxDone || entries[0].MaybeSent {
		t.Fatalf("the call under way was not recorded as done: %+v\n%s", entries, p.logs())
	}
}
