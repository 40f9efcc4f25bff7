package b24test_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
)

// try posts a JSON body and reports a transport error instead of failing.
func try(ctx context.Context, client *http.Client, url, body string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	return read(resp), nil
}

func sendMessage(t *testing.T, p *b24test.Portal, text string) answer {
	t.Helper()
	return callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": text})
}

// sendAtOnce sends n messages concurrently and returns their answers.
func sendAtOnce(t *testing.T, p *b24test.Portal, n int) []answer {
	t.Helper()
	out := make([]answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out[i], errs[i] = try(t.Context(), http.DefaultClient, p.WebhookURL()+"imbot.message.add.json",
				fmt.Sprintf(`{"DIALOG_ID":"27","MESSAGE":"m%d"}`, i))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func wantQueryLimit(t *testing.T, a answer) {
	t.Helper()
	if a.Status != 503 || a.Raw != `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}` {
		t.Fatalf("answer %d %s, want 503 QUERY_LIMIT_EXCEEDED", a.Status, a.Raw)
	}
}

// steppedClock is a clock the test moves by hand, for the portal's limits to read
// (SetClock): what they allow then depends on the steps, not on how fast the
// machine sends.
type steppedClock struct {
	start   time.Time
	elapsed atomic.Int64 // nanoseconds
}

func newSteppedClock(p *b24test.Portal) *steppedClock {
	c := &steppedClock{start: time.Now()}
	p.SetClock(c.now)
	return c
}

func (c *steppedClock) now() time.Time       { return c.start.Add(time.Duration(c.elapsed.Load())) }
func (c *steppedClock) step(d time.Duration) { c.elapsed.Add(int64(d)) }

// The default bucket is the cloud's: 50 at once pass, the 51st is refused and not
// run, and half a second later (2 a second), not a moment sooner, there is room for
// one more.
func TestDefaultRateLimit(t *testing.T) {
	p := b24test.New(t)
	clock := newSteppedClock(p)
	for i, a := range sendAtOnce(t, p, 50) {
		if a.Status != 200 {
			t.Fatalf("request %d of the burst: %d %s", i, a.Status, a.Raw)
		}
	}
	wantQueryLimit(t, sendMessage(t, p, "one too many"))
	if n := len(p.AllMessages()); n != 50 {
		t.Fatalf("%d messages, want 50", n)
	}
	if n := len(p.Calls()); n != 50 {
		t.Fatalf("the refused request was recorded: %d calls", n)
	}
	if p.LimitRejections() != 1 || p.Requests() != 51 {
		t.Fatalf("rejections %d, requests %d", p.LimitRejections(), p.Requests())
	}
	clock.step(499 * time.Millisecond)
	wantQueryLimit(t, sendMessage(t, p, "a moment too soon"))
	clock.step(time.Millisecond)
	wantResult(t, sendMessage(t, p, "after half a second"), "5051")
	wantQueryLimit(t, sendMessage(t, p, "again too many"))
	if p.LimitRejections() != 3 || p.Requests() != 54 {
		t.Fatalf("rejections %d, requests %d", p.LimitRejections(), p.Requests())
	}
}

// A batch is one request however many commands it holds; a refused batch runs none.
func TestRateLimitBatchCountsOnce(t *testing.T) {
	p := b24test.New(t)
	p.SetRateLimit(0.001, 3)
	var cmds []string
	for i := range 50 {
		cmds = append(cmds, fmt.Sprintf(`"k%02d":"imbot.message.add?DIALOG_ID=27&MESSAGE=m%d"`, i, i))
	}
	body := `{"halt":0,"cmd":{` + strings.Join(cmds, ",") + `}}`
	for i := range 3 {
		a := do(t, p.WebhookURL()+"batch", "application/json", body)
		if a.Status != 200 || len(a.Body["result"].(map[string]any)["result"].(map[string]any)) != 50 {
			t.Fatalf("batch %d: %d %.200s", i, a.Status, a.Raw)
		}
	}
	wantQueryLimit(t, do(t, p.WebhookURL()+"batch", "application/json", body))
	if n := len(p.AllMessages()); n != 150 {
		t.Fatalf("%d messages, want 150", n)
	}
	if n := len(p.CallsTo("batch")); n != 3 {
		t.Fatalf("%d batch calls recorded, want 3", n)
	}
	if p.Requests() != 4 || p.LimitRejections() != 1 {
		t.Fatalf("requests %d, rejections %d", p.Requests(), p.LimitRejections())
	}
}

// A client that sends a burst and then paces itself at the rate is never refused; one
// that goes faster is.
func TestRateLimitPacedClient(t *testing.T) {
	p := b24test.New(t)
	clock := newSteppedClock(p)
	p.SetRateLimit(20, 5)
	for i, a := range sendAtOnce(t, p, 5) {
		if a.Status != 200 {
			t.Fatalf("request %d of the burst: %d %s", i, a.Status, a.Raw)
		}
	}
	// Each request comes 1/20 s after the one before: the bucket stays at the brim,
	// and any error in its arithmetic refuses one.
	const paced = 30
	for i := range paced {
		clock.step(50 * time.Millisecond)
		if a := sendMessage(t, p, fmt.Sprintf("paced %d", i)); a.Status != 200 {
			t.Fatalf("paced request %d: %d %s", i, a.Status, a.Raw)
		}
	}
	if p.LimitRejections() != 0 {
		t.Fatalf("%d rejections", p.LimitRejections())
	}
	// 8 at once, 1/20 s after the last: room for one.
	clock.step(50 * time.Millisecond)
	refused := 0
	for _, a := range sendAtOnce(t, p, 8) {
		if a.Status == 503 {
			refused++
		}
	}
	if refused != 7 || p.LimitRejections() != 7 {
		t.Fatalf("8 at once: %d refused, %d rejections counted; want 7", refused, p.LimitRejections())
	}
	if got, want := len(p.AllMessages()), 5+paced+1; got != want {
		t.Fatalf("%d messages, want %d", got, want)
	}
}

// Wrong credentials are answered 401 and cost nothing; SetRateLimit(0, …) lifts the
// limit.
func TestRateLimitAuthAndOff(t *testing.T) {
	p := b24test.New(t)
	p.SetRateLimit(0.001, 1)
	for range 5 {
		wantError(t, do(t, p.URL()+"/rest/1/wrongsecret/imbot.message.add.json", "application/json", "{}"), 401, "NO_AUTH_FOUND")
	}
	if p.Requests() != 0 {
		t.Fatalf("401s counted: %d", p.Requests())
	}
	wantResult(t, sendMessage(t, p, "first"), "5001")
	wantQueryLimit(t, sendMessage(t, p, "second"))
	p.SetRateLimit(0, 0)
	for i, a := range sendAtOnce(t, p, 80) {
		if a.Status != 200 {
			t.Fatalf("request %d with no limit: %d %s", i, a.Status, a.Raw)
		}
	}
	if p.LimitRejections() != 1 || p.Requests() != 82 {
		t.Fatalf("rejections %d, requests %d", p.LimitRejections(), p.Requests())
	}
}

// Each fault answers as described, and runs the call or not as described.
func TestFaultKinds(t *testing.T) {
	cases := []struct {
		fault    b24test.Fault
		status   int    // 0: the connection is dropped
		contains string // in the body
		executed bool
	}{
		{b24test.FaultServerError, 500, "Internal Server Error", false},
		{b24test.FaultQueryLimit, 503, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`, false},
		{b24test.FaultHTML, 502, "<center><h1>502 Bad Gateway</h1></center>", false},
		{b24test.FaultDropBefore, 0, "", false},
		{b24test.FaultDropAfter, 0, "", true},
		{b24test.FaultSlow, 200, `"result":5001`, true},
	}
	for _, c := range cases {
		t.Run(c.fault.String(), func(t *testing.T) {
			p := b24test.New(t)
			p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{c.fault}, SlowDelay: 300 * time.Millisecond})
			begin := time.Now()
			a, err := try(t.Context(), http.DefaultClient, p.WebhookURL()+"imbot.message.add.json", `{"DIALOG_ID":"27","MESSAGE":"x"}`)
			switch {
			case c.status == 0 && err == nil:
				t.Fatalf("answered %d %s, want a dropped connection", a.Status, a.Raw)
			case c.status != 0 && err != nil:
				t.Fatal(err)
			case c.status != 0 && (a.Status != c.status || !strings.Contains(a.Raw, c.contains)):
				t.Fatalf("answer %d %s, want %d with %s", a.Status, a.Raw, c.status, c.contains)
			}
			if c.status >= 500 && c.fault != b24test.FaultQueryLimit && strings.Contains(a.Raw, "{") {
				t.Fatalf("an HTML fault sent JSON: %s", a.Raw)
			}
			if c.fault == b24test.FaultSlow && time.Since(begin) < 300*time.Millisecond {
				t.Fatalf("slow answer came after %v", time.Since(begin))
			}
			wantCalls := 0
			if c.executed {
				wantCalls = 1
			}
			if n, m := len(p.Calls()), len(p.AllMessages()); n != wantCalls || m != wantCalls {
				t.Fatalf("%d calls, %d messages; want %d", n, m, wantCalls)
			}
			if got := p.FaultCounts(); !reflect.DeepEqual(got, map[b24test.Fault]int{c.fault: 1}) {
				t.Fatalf("FaultCounts %v", got)
			}
			if p.Requests() != 1 || p.LimitRejections() != 0 {
				t.Fatalf("requests %d, rejections %d", p.Requests(), p.LimitRejections())
			}
			// Stopped, the portal answers normally again; the counts stay.
			p.InjectFaults(b24test.FaultPlan{})
			wantResult(t, sendMessage(t, p, "y"), fmt.Sprint(5001+wantCalls))
			if got := p.FaultCounts(); got[c.fault] != 1 {
				t.Fatalf("FaultCounts after stopping %v", got)
			}
		})
	}
}

// A client that gives up on a slow answer does not learn that the call ran; meanwhile
// other requests are answered at once.
func TestFaultSlowTimeoutAndConcurrency(t *testing.T) {
	p := b24test.New(t)
	p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: 2 * time.Second,
		Methods: []string{"imbot.message.add"}})
	impatient := &http.Client{Timeout: 200 * time.Millisecond}
	if a, err := try(t.Context(), impatient, p.WebhookURL()+"imbot.message.add.json", `{"DIALOG_ID":"27","MESSAGE":"x"}`); err == nil {
		t.Fatalf("answered %d %s before the client's timeout", a.Status, a.Raw)
	}
	if m := p.AllMessages(); len(m) != 1 || m[0].Text != "x" {
		t.Fatalf("the slow call did not run: %+v", m)
	}
	// Two slow calls in flight do not hold up a third request to another method.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, _ = try(t.Context(), impatient, p.WebhookURL()+"imbot.message.add.json", `{"DIALOG_ID":"27","MESSAGE":"y"}`)
		})
	}
	p.WaitCalls(t, "imbot.message.add", 3, 5*time.Second)
	begin := time.Now()
	wantResult(t, callJSON(t, p, "imbot.chat.add", map[string]any{"TITLE": "t"}), "1001")
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("a request waited %v behind slow ones", d)
	}
	wg.Wait()
}

// The same seed gives the same faults for the same requests; another seed does not.
func TestFaultSeedReproducible(t *testing.T) {
	run := func(seed uint64) (string, map[b24test.Fault]int) {
		p := b24test.New(t)
		p.SetRateLimit(0, 0)
		p.InjectFaults(b24test.FaultPlan{Share: 0.5, Seed: seed,
			Kinds: []b24test.Fault{b24test.FaultServerError, b24test.FaultQueryLimit, b24test.FaultHTML}})
		var b strings.Builder
		for i := range 60 {
			a := sendMessage(t, p, fmt.Sprint(i))
			fmt.Fprintf(&b, "%d ", a.Status)
		}
		return b.String(), p.FaultCounts()
	}
	first, counts := run(42)
	second, again := run(42)
	if first != second || !reflect.DeepEqual(counts, again) {
		t.Fatalf("seed 42 twice:\n %s %v\n %s %v", first, counts, second, again)
	}
	if other, _ := run(43); other == first {
		t.Fatalf("seeds 42 and 43 gave the same faults: %s", first)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if faulted := 60 - strings.Count(first, "200 "); total != faulted || faulted < 15 || faulted > 45 {
		t.Fatalf("%d faulted answers, counts %v, for a share of 0.5 of 60", faulted, counts)
	}
}

// Methods limits the faults to some methods, "batch" meaning a batch call.
func TestFaultMethodsFilter(t *testing.T) {
	p := b24test.New(t)
	p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultServerError}, Methods: []string{"BATCH"}})
	wantResult(t, sendMessage(t, p, "direct"), "5001")
	a := do(t, p.WebhookURL()+"batch", "application/json", `{"halt":0,"cmd":{"a":"imbot.message.add?DIALOG_ID=27&MESSAGE=b"}}`)
	if a.Status != 500 {
		t.Fatalf("batch answered %d %s", a.Status, a.Raw)
	}
	p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultHTML}, Methods: []string{"imbot.message.add"}})
	if a := do(t, p.WebhookURL()+"batch", "application/json", `{"halt":0,"cmd":{"a":"imbot.message.add?DIALOG_ID=27&MESSAGE=b"}}`); a.Status != 200 {
		t.Fatalf("batch with a filtered-in sub-command faulted: %d %s", a.Status, a.Raw)
	}
	if a := sendMessage(t, p, "direct"); a.Status != 502 {
		t.Fatalf("direct call answered %d %s", a.Status, a.Raw)
	}
	if got := p.FaultCounts(); !reflect.DeepEqual(got, map[b24test.Fault]int{b24test.FaultServerError: 1, b24test.FaultHTML: 1}) {
		t.Fatalf("FaultCounts %v", got)
	}
	if texts := messageTexts(p); texts != "direct b" {
		t.Fatalf("messages %q", texts)
	}
}

func messageTexts(p *b24test.Portal) string {
	var out []string
	for _, m := range p.AllMessages() {
		out = append(out, m.Text)
	}
	return strings.Join(out, " ")
}

// A portal with held answers and dropped connections closes at once when its test
// ends, and the held client gets no answer.
func TestFaultCleanupDoesNotHang(t *testing.T) {
	held := make(chan error, 1)
	begin := time.Now()
	t.Run("portal", func(t *testing.T) {
		p := b24test.New(t)
		p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultDropAfter}})
		if _, err := try(t.Context(), http.DefaultClient, p.WebhookURL()+"imbot.message.add.json", `{"DIALOG_ID":"27","MESSAGE":"x"}`); err == nil {
			t.Fatal("dropped connection answered")
		}
		p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: time.Hour})
		go func() {
			a, err := try(context.Background(), http.DefaultClient, p.WebhookURL()+"imbot.message.add.json", `{"DIALOG_ID":"27","MESSAGE":"y"}`)
			if err == nil {
				err = fmt.Errorf("answered %d %s", a.Status, a.Raw)
			} else {
				err = nil
			}
			held <- err
		}()
		p.WaitCalls(t, "imbot.message.add", 2, 5*time.Second)
	})
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("the portal took %v to close", d)
	}
	select {
	case err := <-held:
		if err != nil {
			t.Fatalf("held request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request is still waiting after the portal closed")
	}
}

// A blocked method answers OPERATION_TIME_LIMIT with operating_reset_at, directly
// (HTTP 429) and inside a batch, without running; the block ends on time.
func TestBlockMethod(t *testing.T) {
	p := b24test.New(t)
	until := time.Now().Add(90 * time.Second)
	p.BlockMethod("IMBOT.MESSAGE.ADD", until)

	a := sendMessage(t, p, "blocked")
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(a.Raw), &top); err != nil {
		t.Fatal(err)
	}
	prefix := `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit.","time":{"start":`
	if a.Status != 429 || !strings.HasPrefix(a.Raw, prefix) || len(top) != 3 {
		t.Fatalf("answer %d %s", a.Status, a.Raw)
	}
	var tm struct {
		ResetAt   int64   `json:"operating_reset_at"`
		Operating float64 `json:"operating"`
		Start     float64 `json:"start"`
	}
	if err := json.Unmarshal(top["time"], &tm); err != nil || tm.ResetAt != until.Unix() || tm.Start == 0 {
		t.Fatalf("time block %s (want operating_reset_at %d)", top["time"], until.Unix())
	}

	a = do(t, p.WebhookURL()+"batch", "application/json",
		`{"halt":0,"cmd":{"a":"imbot.chat.add?TITLE=T","b":"imbot.message.add?DIALOG_ID=27&MESSAGE=batched","c":"imbot.message.add?DIALOG_ID=27&MESSAGE=again"}}`)
	_ = json.Unmarshal([]byte(a.Raw), &top)
	want := `{"result":{"a":1001},"result_error":{"b":{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit."},` +
		`"c":{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit."}},"result_total":[],"result_next":[],"result_time":{"a":`
	if a.Status != 200 || !strings.HasPrefix(string(top["result"]), want) {
		t.Fatalf("batch %d %s", a.Status, a.Raw)
	}
	if n := len(p.AllMessages()); n != 0 {
		t.Fatalf("a blocked method ran: %d messages", n)
	}
	if n := len(p.CallsTo("imbot.message.add")); n != 3 {
		t.Fatalf("%d blocked calls recorded, want 3", n)
	}

	// Lifted by a past time, or when the time comes, not a moment sooner.
	clock := newSteppedClock(p)
	p.BlockMethod("imbot.message.add", clock.now().Add(-time.Second))
	wantResult(t, sendMessage(t, p, "free"), "5001")
	p.BlockMethod("imbot.message.add", clock.now().Add(150*time.Millisecond))
	clock.step(149 * time.Millisecond)
	if a := sendMessage(t, p, "blocked"); a.Status != 429 {
		t.Fatalf("answer %d %s", a.Status, a.Raw)
	}
	clock.step(time.Millisecond)
	wantResult(t, sendMessage(t, p, "free again"), "5002")
	p.BlockMethod("imbot.message.add", time.Time{})
	wantResult(t, sendMessage(t, p, "unblocked"), "5003")
}

// Every answer's "time" block carries operating_reset_at (ten minutes on) and operating.
func TestTimeBlockOperating(t *testing.T) {
	p := b24test.New(t)
	a := sendMessage(t, p, "x")
	var top map[string]json.RawMessage
	_ = json.Unmarshal([]byte(a.Raw), &top)
	var tm struct {
		Start     float64      `json:"start"`
		ResetAt   json.Number  `json:"operating_reset_at"`
		Operating *json.Number `json:"operating"`
	}
	if err := json.Unmarshal(top["time"], &tm); err != nil {
		t.Fatal(err)
	}
	reset, err := tm.ResetAt.Int64()
	if err != nil || reset != int64(tm.Start)+600 && reset != int64(tm.Start)+601 || tm.Operating == nil {
		t.Fatalf("time block %s", top["time"])
	}
	if !strings.HasSuffix(string(top["time"]), `,"operating_reset_at":`+tm.ResetAt.String()+`,"operating":0}`) {
		t.Fatalf("time block keys out of order: %s", top["time"])
	}
}

// imbot.chat.get by ENTITY_TYPE + ENTITY_ID answers {"ID": n} or null; CHAT_ID is not
// a parameter of the method.
func TestChatGet(t *testing.T) {
	p := b24test.New(t)
	wantResult(t, callJSON(t, p, "imbot.chat.add", map[string]any{"BOT_ID": 7, "TITLE": "Ticket 1", "USERS": []int{27, 31},
		"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": "t-1", "MESSAGE": "Welcome"}), "1001")
	wantResult(t, callJSON(t, p, "imbot.chat.add", map[string]any{"TITLE": "Ticket 2", "TYPE": "OPEN",
		"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": "t-2"}), "1002")

	a := callJSON(t, p, "imbot.chat.get", map[string]any{"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": "t-2"})
	wantResult(t, a, `{"ID":1002}`)
	if !strings.HasPrefix(a.Raw, `{"result":{"ID":1002},"time":{`) {
		t.Fatalf("raw %s", a.Raw)
	}
	wantResult(t, callForm(t, p, "imbot.chat.get", "ENTITY_TYPE=SUPPORTBOT&ENTITY_ID=t-1"), `{"ID":1001}`)
	for _, params := range []map[string]any{
		{"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": "t-3"},
		{"ENTITY_TYPE": "supportbot", "ENTITY_ID": "t-1"},
		{"ENTITY_TYPE": "SUPPORTBOT"},
		{"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": ""},
		{"CHAT_ID": 1001},
		{},
	} {
		if a := callJSON(t, p, "imbot.chat.get", params); a.Status != 200 || !strings.HasPrefix(a.Raw, `{"result":null,"time":{`) {
			t.Fatalf("%v: %d %s", params, a.Status, a.Raw)
		}
	}

	// In a batch, and for a chat the portal learnt from an event.
	bot := botServer(t)
	event := b24test.Event("v1/onimbotmessageadd-group.form", map[string]string{"data[PARAMS][CHAT_ENTITY_ID]": "42"})
	if _, _, err := p.Post(t.Context(), bot.url, event); err != nil {
		t.Fatal(err)
	}
	a = do(t, p.WebhookURL()+"batch", "application/json",
		`{"halt":0,"cmd":{"x":"imbot.chat.get?ENTITY_TYPE=SUPPORTBOT&ENTITY_ID=t-1","y":"imbot.chat.get?ENTITY_TYPE=NONE&ENTITY_ID=1"}}`)
	var top map[string]json.RawMessage
	_ = json.Unmarshal([]byte(a.Raw), &top)
	if !strings.HasPrefix(string(top["result"]), `{"result":{"x":{"ID":1001},"y":null},"result_error":[]`) {
		t.Fatalf("batch %s", a.Raw)
	}
	wantResult(t, callJSON(t, p, "imbot.chat.get", map[string]any{"ENTITY_TYPE": "THREAD", "ENTITY_ID": "42"}), `{"ID":1157}`)
	wantError(t, callJSON(t, p, "imbot.chat.get", map[string]any{"DIALOG_ID": "chat1001"}), 400, "B24TEST_NOT_MODELLED")
}

// AllMessages lists every message the bot posted, in order, duplicates included.
func TestAllMessages(t *testing.T) {
	p := b24test.New(t)
	wantResult(t, callJSON(t, p, "imbot.chat.add", map[string]any{"TITLE": "c", "MESSAGE": "hello"}), "1001")
	sendMessage(t, p, "one")
	callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "chat1001", "MESSAGE": "two"})
	sendMessage(t, p, "one")
	callJSON(t, p, "imbot.message.update", map[string]any{"MESSAGE_ID": 5002, "MESSAGE": "uno"})
	got := p.AllMessages()
	var desc []string
	for _, m := range got {
		desc = append(desc, fmt.Sprintf("%d/%s/%s", m.ID, m.DialogID, m.Text))
	}
	if want := "5001/chat1001/hello 5002/27/uno 5003/chat1001/two 5004/27/one"; strings.Join(desc, " ") != want {
		t.Fatalf("AllMessages %s", strings.Join(desc, " "))
	}
	got[0].Text = "changed"
	if p.AllMessages()[0].Text != "hello" {
		t.Fatal("AllMessages shares the portal's messages")
	}
}
