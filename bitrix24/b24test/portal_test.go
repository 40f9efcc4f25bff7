package b24test_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// answer is a decoded portal answer.
type answer struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (a answer) result() any { return a.Body["result"] }

func (a answer) code() string {
	s, _ := a.Body["error"].(string)
	return s
}

// do posts a raw body to the portal; contentType "" sends none.
func do(t *testing.T, url, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return read(resp)
}

// read decodes an answer.
func read(resp *http.Response) answer {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Raw: string(raw)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&a.Body)
	return a
}

func callJSON(t *testing.T, p *b24test.Portal, method string, params any) answer {
	t.Helper()
	b, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, p.WebhookURL()+method+".json", "application/json", string(b))
}

func callForm(t *testing.T, p *b24test.Portal, method, form string) answer {
	t.Helper()
	return do(t, p.WebhookURL()+method, "application/x-www-form-urlencoded", form)
}

func wantResult(t *testing.T, a answer, want string) {
	t.Helper()
	got, _ := json.Marshal(a.result())
	if a.Status != 200 || string(got) != want {
		t.Fatalf("answer %d %s, want result %s", a.Status, a.Raw, want)
	}
	tm, ok := a.Body["time"].(map[string]any)
	if !ok {
		t.Fatalf("no time block: %s", a.Raw)
	}
	for _, k := range []string{"start", "finish", "duration", "processing", "date_start", "date_finish"} {
		if _, ok := tm[k]; !ok {
			t.Errorf("time block lacks %s: %v", k, tm)
		}
	}
}

func wantError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.Status != status || a.code() != code {
		t.Fatalf("answer %d %s, want %d %s", a.Status, a.Raw, status, code)
	}
	if d, _ := a.Body["error_description"].(string); d == "" {
		t.Errorf("no error_description: %s", a.Raw)
	}
}

func TestWebhookURLAndRouting(t *testing.T) {
	p := b24test.New(t)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/rest/1/[0-9a-f]{16}/$`).MatchString(p.WebhookURL()) {
		t.Fatalf("WebhookURL %q", p.WebhookURL())
	}
	if !strings.HasPrefix(p.WebhookURL(), p.URL()+"/rest/") {
		t.Fatalf("URL %q", p.URL())
	}
	secret := strings.Split(p.WebhookURL(), "/")[5]
	for _, path := range []string{"/rest/1/wrongsecret/imbot.message.add.json", "/rest/2/" + secret + "/scope",
		"/rest/imbot.message.add.json", "/rest/1/" + secret + "/x/scope"} {
		wantError(t, do(t, p.URL()+path, "application/json", "{}"), 401, "NO_AUTH_FOUND")
	}
	if a := do(t, p.URL()+"/index.php", "", ""); a.Status != 404 || !strings.Contains(a.Raw, "<html>") {
		t.Fatalf("outside /rest/: %d %s", a.Status, a.Raw)
	}
	a := callJSON(t, p, "no.such.method", map[string]any{})
	wantError(t, a, 404, "ERROR_METHOD_NOT_FOUND")
	if d := a.Body["error_description"]; d != "Method not found!" {
		t.Errorf("description %q", d)
	}
	// Only authorised calls are recorded.
	if calls := p.Calls(); len(calls) != 1 || calls[0].Method != "no.such.method" {
		t.Fatalf("calls %+v", calls)
	}
	// With or without ".json", any case.
	wantResult(t, callForm(t, p, "IMBOT.MESSAGE.ADD", "DIALOG_ID=27&MESSAGE=hi"), "5001")
	if n := len(p.CallsTo("imbot.message.add")); n != 1 {
		t.Fatalf("CallsTo is case-sensitive: %d", n)
	}
}

func TestChatAdd(t *testing.T) {
	p := b24test.New(t)
	a := callJSON(t, p, "imbot.chat.add", map[string]any{
		"BOT_ID": 7, "TYPE": "OPEN", "TITLE": " Ticket #1 ", "USERS": []int{27, 31},
		"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": "t-1", "MESSAGE": "Welcome",
	})
	wantResult(t, a, "1001")
	wantResult(t, callForm(t, p, "imbot.chat.add", "TITLE=Second&USERS%5B%5D=5&USERS%5B%5D=6"), "1002")

	chat, ok := p.Chat(1001)
	want := b24test.Chat{ID: 1001, Title: "Ticket #1", Users: []int64{27, 31}, EntityType: "SUPPORTBOT", EntityID: "t-1"}
	if !ok || !reflect.DeepEqual(chat, want) {
		t.Fatalf("chat\n %+v\nwant\n %+v", chat, want)
	}
	if m := p.AllMessages(); len(m) != 1 || m[0].ID != 5001 || m[0].DialogID != "chat1001" || m[0].Text != "Welcome" {
		t.Fatalf("messages %+v", m)
	}
	second, _ := p.Chat(1002)
	if !reflect.DeepEqual(second.Users, []int64{5, 6}) || len(p.Messages("chat1002")) != 0 {
		t.Fatalf("second %+v", second)
	}
	if chats := p.Chats(); len(chats) != 2 || chats[0].ID != 1001 || chats[1].ID != 1002 {
		t.Fatalf("chats %+v", chats)
	}
	if _, ok := p.Chat(999); ok {
		t.Fatal("chat 999 exists")
	}
	wantError(t, callJSON(t, p, "imbot.chat.add", map[string]any{"USERS": "27"}), 400, "INVALID_FORMAT")
	wantError(t, callJSON(t, p, "imbot.chat.add", map[string]any{"USERS": []string{"x"}}), 400, "INVALID_FORMAT")
}

func TestMessageAdd(t *testing.T) {
	p := b24test.New(t)
	wantResult(t, callJSON(t, p, "imbot.chat.add", map[string]any{"TITLE": "c"}), "1001")
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"BOT_ID": 7, "DIALOG_ID": "27", "MESSAGE": "  one  "}), "5001")
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "chat1001", "MESSAGE": "two",
		"KEYBOARD": map[string]any{"BUTTONS": []any{map[string]any{"TEXT": "Take", "COMMAND": "take", "COMMAND_PARAMS": 12}}}}), "5002")
	// A keyboard given as a JSON string, and as a bare list of buttons.
	wantResult(t, callForm(t, p, "imbot.message.add", "DIALOG_ID=27&MESSAGE=three&KEYBOARD="+
		"%5B%7B%22TEXT%22%3A%22A%22%2C%22LINK%22%3A%22https%3A%2F%2Fx%22%7D%5D"), "5003")
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "ATTACH": []any{map[string]any{"MESSAGE": "x"}}}), "5004")

	if got := p.Messages("27"); len(got) != 3 || got[0].Text != "one" || got[0].Buttons() != nil || got[1].Text != "three" || got[2].ID != 5004 {
		t.Fatalf("messages 27 %+v", got)
	}
	msg := p.Messages("chat1001")[0]
	if b := msg.Buttons(); len(b) != 1 || b[0] != (bitrix24.Button{Text: "Take", Command: "take", CommandParams: "12"}) {
		t.Fatalf("buttons %+v", b)
	}
	if b := p.Messages("27")[1].Buttons(); len(b) != 1 || b[0].Link != "https://x" {
		t.Fatalf("buttons from a JSON string %+v", b)
	}

	errorsCases := []struct {
		params map[string]any
		code   string
	}{
		{map[string]any{"MESSAGE": "x"}, "DIALOG_ID_EMPTY"},
		{map[string]any{"DIALOG_ID": " ", "MESSAGE": "x"}, "DIALOG_ID_EMPTY"},
		{map[string]any{"DIALOG_ID": "27"}, "MESSAGE_EMPTY"},
		{map[string]any{"DIALOG_ID": "27", "MESSAGE": " \n "}, "MESSAGE_EMPTY"},
		{map[string]any{"DIALOG_ID": "27", "MESSAGE": "", "ATTACH": ""}, "MESSAGE_EMPTY"},
		{map[string]any{"DIALOG_ID": "chat999", "MESSAGE": "x"}, "WRONG_REQUEST"},
		{map[string]any{"DIALOG_ID": "chatx", "MESSAGE": "x"}, "WRONG_REQUEST"},
		{map[string]any{"DIALOG_ID": "0", "MESSAGE": "x"}, "WRONG_REQUEST"},
		{map[string]any{"DIALOG_ID": "-5", "MESSAGE": "x"}, "WRONG_REQUEST"},
		{map[string]any{"DIALOG_ID": "abc", "MESSAGE": "x"}, "WRONG_REQUEST"},
		{map[string]any{"DIALOG_ID": "27", "MESSAGE": "x", "KEYBOARD": "{not json"}, "KEYBOARD_ERROR"},
		{map[string]any{"DIALOG_ID": "27", "MESSAGE": "x", "KEYBOARD": map[string]any{"BUTTONS": "x"}}, "KEYBOARD_ERROR"},
		{map[string]any{"DIALOG_ID": "27", "MESSAGE": "x", "KEYBOARD": map[string]any{"BUTTONS": []any{map[string]any{"TEXT": strings.Repeat("x", 31*1024)}}}}, "KEYBOARD_OVERSIZE"},
	}
	for _, c := range errorsCases {
		wantError(t, callJSON(t, p, "imbot.message.add", c.params), 400, c.code)
	}
	if n := len(p.Messages("27")); n != 3 {
		t.Fatalf("failed calls left messages: %d", n)
	}
}

func TestMessageUpdate(t *testing.T) {
	p := b24test.New(t)
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "old",
		"KEYBOARD": []any{map[string]any{"TEXT": "A", "COMMAND": "a"}}}), "5001")
	wantResult(t, callJSON(t, p, "imbot.message.update", map[string]any{"MESSAGE_ID": 5001, "MESSAGE": "new"}), "true")
	m := p.Messages("27")[0]
	if m.Text != "new" || len(m.Buttons()) != 1 {
		t.Fatalf("after text update %+v", m)
	}
	wantResult(t, callForm(t, p, "imbot.message.update", "MESSAGE_ID=5001&KEYBOARD%5BBUTTONS%5D%5B0%5D%5BTEXT%5D=B"), "true")
	if m := p.Messages("27")[0]; m.Text != "new" || m.Buttons()[0].Text != "B" {
		t.Fatalf("after keyboard update %+v", m)
	}
	wantResult(t, callForm(t, p, "imbot.message.update", "MESSAGE_ID=5001&KEYBOARD=N"), "true")
	if m := p.Messages("27")[0]; m.Buttons() != nil {
		t.Fatalf("KEYBOARD=N kept %+v", m.Buttons())
	}
	wantError(t, callJSON(t, p, "imbot.message.update", map[string]any{"MESSAGE_ID": 4242, "MESSAGE": "x"}), 403, "CANT_EDIT_MESSAGE")
	wantError(t, callJSON(t, p, "imbot.message.update", map[string]any{"MESSAGE": "x"}), 400, "MESSAGE_ID_ERROR")
	wantError(t, callJSON(t, p, "imbot.message.update", map[string]any{"MESSAGE_ID": "abc"}), 400, "MESSAGE_ID_ERROR")
}

func TestChatUpdateTitle(t *testing.T) {
	p := b24test.New(t)
	id := p.AddChat(b24test.Chat{Title: "Old", Users: []int64{1}})
	if id != 1001 {
		t.Fatalf("AddChat id %d", id)
	}
	wantResult(t, callJSON(t, p, "imbot.chat.updateTitle", map[string]any{"CHAT_ID": id, "TITLE": " New [b]x[/b] "}), "true")
	if c, _ := p.Chat(id); c.Title != "New [b]x[/b]" {
		t.Fatalf("title %q", c.Title)
	}
	wantError(t, callJSON(t, p, "imbot.chat.updateTitle", map[string]any{"TITLE": "x"}), 400, "CHAT_ID_EMPTY")
	wantError(t, callJSON(t, p, "imbot.chat.updateTitle", map[string]any{"CHAT_ID": id, "TITLE": "  "}), 400, "TITLE_EMPTY")
	wantError(t, callJSON(t, p, "imbot.chat.updateTitle", map[string]any{"CHAT_ID": 4242, "TITLE": "x"}), 400, "WRONG_REQUEST")
	// The next chat created skips the IDs AddChat took.
	p.AddChat(b24test.Chat{ID: 1002})
	wantResult(t, callJSON(t, p, "imbot.chat.add", map[string]any{"TITLE": "n"}), "1003")
}

func TestPostLearnsGroupChat(t *testing.T) {
	p := b24test.New(t)
	bot := botServer(t)
	wantError(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "chat1157", "MESSAGE": "x"}), 400, "WRONG_REQUEST")
	if _, _, err := p.Post(t.Context(), bot.url, b24test.Fixture("v1/onimbotmessageadd-group.form")); err != nil {
		t.Fatal(err)
	}
	c, ok := p.Chat(1157)
	if !ok || c.Title != "Brown Chat #18" || c.EntityType != "THREAD" {
		t.Fatalf("chat %+v", c)
	}
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "chat1157", "MESSAGE": "x"}), "5001")
}

func TestJSONParamsFlattened(t *testing.T) {
	p := b24test.New(t)
	p.Handle("echo.params", func(f bitrix24.Form) (any, *bitrix24.Error) { return f, nil })
	a := do(t, p.WebhookURL()+"echo.params.json?FROM_QUERY=q&OVER=query", "application/json",
		`{"N":12,"F":1.5,"T":true,"FL":false,"Z":null,"S":"s","O":{"a":{"b":"c"}},"L":[1,"x",null,{"k":"v"}],"E":{},"OVER":"body"}`)
	wantResult(t, a, `{"F":"1.5","FL":"0","FROM_QUERY":"q","L":{"0":"1","1":"x","3":{"k":"v"}},"N":"12","O":{"a":{"b":"c"}},"OVER":"body","S":"s","T":"1"}`)
	call := p.Calls()[0]
	if call.JSON["N"] != json.Number("12") || call.JSON["T"] != true || call.Batched {
		t.Fatalf("JSON %#v", call.JSON)
	}
	if call.Params.String("L", "3", "k") != "v" {
		t.Fatal("nested list lost")
	}
	// A form body: no JSON.
	callForm(t, p, "echo.params", "a%5Bb%5D=1")
	if call := p.Calls()[1]; call.JSON != nil || call.Params.String("a", "b") != "1" {
		t.Fatalf("form call %+v", call)
	}
	wantError(t, do(t, p.WebhookURL()+"echo.params.json", "application/json", "{bad"), 400, "INVALID_REQUEST")
}

// The batch answer has Bitrix24's shape, commands run in the body's order, and each
// sub-command is recorded after the batch call.
func TestBatchShape(t *testing.T) {
	p := b24test.New(t)
	body := `{"halt":0,"cmd":{` +
		`"z_msg":"imbot.message.add?DIALOG_ID=27&MESSAGE=Hello%2C+world&KEYBOARD%5BBUTTONS%5D%5B0%5D%5BTEXT%5D=OK",` +
		`"a_bad":"imbot.message.add?DIALOG_ID=chat42&MESSAGE=x",` +
		`"m_chat":"imbot.chat.add?TITLE=T&USERS%5B0%5D=27",` +
		`"q_none":"no.such.method",` +
		`"n_nested":"batch?cmd%5Bx%5D=scope"}}`
	a := do(t, p.WebhookURL()+"batch", "application/json", body)
	if a.Status != 200 {
		t.Fatalf("status %d %s", a.Status, a.Raw)
	}
	res := a.Body["result"].(map[string]any)
	// Exactly the keys Bitrix24 sends, in its order.
	var top map[string]json.RawMessage
	_ = json.Unmarshal([]byte(a.Raw), &top)
	resultRaw := string(top["result"])
	wantOrder := []string{`"result":`, `"result_error":`, `"result_total":[]`, `"result_next":[]`, `"result_time":`}
	last := -1
	for _, w := range wantOrder {
		i := strings.Index(resultRaw, w)
		if i < 0 || i < last {
			t.Fatalf("result %s lacks or misorders %s", resultRaw, w)
		}
		last = i
	}
	if !strings.HasPrefix(resultRaw, `{"result":{"z_msg":5001,"m_chat":1001},"result_error":{"a_bad":{"error":"WRONG_REQUEST","error_description":"Message isn't added"},"q_none":{"error":"ERROR_METHOD_NOT_FOUND","error_description":"Method not found!"},"n_nested":{"error":"ERROR_BATCH_METHOD_NOT_ALLOWED","error_description":"Method is not allowed for batch usage"}},`) {
		t.Fatalf("result %s", resultRaw)
	}
	times := res["result_time"].(map[string]any)
	if len(times) != 2 || times["z_msg"] == nil {
		t.Fatalf("result_time %v", times)
	}
	if _, ok := a.Body["time"].(map[string]any); !ok {
		t.Fatal("no time block")
	}

	var got []string
	for _, c := range p.Calls() {
		got = append(got, fmt.Sprintf("%s/%v", c.Method, c.Batched))
	}
	want := "batch/false imbot.message.add/true imbot.message.add/true imbot.chat.add/true no.such.method/true"
	if strings.Join(got, " ") != want {
		t.Fatalf("calls %s", strings.Join(got, " "))
	}
	sub := p.Calls()[1]
	if sub.JSON != nil || sub.Params.String("MESSAGE") != "Hello, world" || sub.Params.String("KEYBOARD", "BUTTONS", "0", "TEXT") != "OK" {
		t.Fatalf("sub-command %+v", sub)
	}
	if m := p.Messages("27"); len(m) != 1 || m[0].Buttons()[0].Text != "OK" {
		t.Fatalf("messages %+v", m)
	}
}

func TestBatchAllFailedShape(t *testing.T) {
	p := b24test.New(t)
	a := do(t, p.WebhookURL()+"batch.json", "application/json", `{"halt":0,"cmd":{"a":"imbot.message.add","b":"imbot.message.add?DIALOG_ID=27"}}`)
	var top map[string]json.RawMessage
	_ = json.Unmarshal([]byte(a.Raw), &top)
	want := `{"result":[],"result_error":{"a":{"error":"DIALOG_ID_EMPTY","error_description":"Dialog ID can't be empty"},"b":{"error":"MESSAGE_EMPTY","error_description":"Message can't be empty"}},"result_total":[],"result_next":[],"result_time":[]}`
	if string(top["result"]) != want {
		t.Fatalf("result\n %s\nwant\n %s", top["result"], want)
	}
}

func TestBatchHaltAndForm(t *testing.T) {
	p := b24test.New(t)
	// A form-encoded batch, as PHP SDKs send it (the fake runs its commands in
	// Form.Keys order); halt stops at the first error.
	form := "halt=1&cmd%5Ba%5D=" + urlq("imbot.message.add?DIALOG_ID=27&MESSAGE=a") +
		"&cmd%5Bb%5D=" + urlq("imbot.message.update?MESSAGE_ID=77&MESSAGE=b") +
		"&cmd%5Bc%5D=" + urlq("imbot.message.add?DIALOG_ID=27&MESSAGE=c")
	a := callForm(t, p, "batch", form)
	var top map[string]json.RawMessage
	_ = json.Unmarshal([]byte(a.Raw), &top)
	want := `{"result":{"a":5001},"result_error":{"b":{"error":"CANT_EDIT_MESSAGE","error_description":"Time has expired for modification or you don't have access"}},"result_total":[],"result_next":[],"result_time":{`
	if !strings.HasPrefix(string(top["result"]), want) {
		t.Fatalf("result %s", top["result"])
	}
	if n := len(p.CallsTo("imbot.message.add")); n != 1 {
		t.Fatalf("halted batch ran %d adds", n)
	}
}

func TestBatchOverLimit(t *testing.T) {
	p := b24test.New(t)
	var cmds []string
	for i := range 52 {
		cmds = append(cmds, fmt.Sprintf(`"k%02d":"imbot.message.add?DIALOG_ID=27&MESSAGE=m%d"`, i, i))
	}
	a := do(t, p.WebhookURL()+"batch", "application/json", `{"halt":0,"cmd":{`+strings.Join(cmds, ",")+`}}`)
	res := a.Body["result"].(map[string]any)
	ok, failed := res["result"].(map[string]any), res["result_error"].(map[string]any)
	if len(ok) != 50 || len(failed) != 2 {
		t.Fatalf("%d ok, %d failed", len(ok), len(failed))
	}
	if e := failed["k51"].(map[string]any); e["error"] != "ERROR_BATCH_LENGTH_EXCEEDED" {
		t.Fatalf("k51 %v", e)
	}
	if n := len(p.Messages("27")); n != 50 {
		t.Fatalf("%d messages", n)
	}
}

func TestHandleOverrides(t *testing.T) {
	p := b24test.New(t)
	p.Handle("imbot.message.add", func(f bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests", HTTPStatus: 503}
	})
	wantError(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"}), 503, "QUERY_LIMIT_EXCEEDED")
	a := do(t, p.WebhookURL()+"batch", "application/json", `{"halt":0,"cmd":{"a":"imbot.message.add?DIALOG_ID=27&MESSAGE=x"}}`)
	if a.Status != 200 || !strings.Contains(a.Raw, `"result_error":{"a":{"error":"QUERY_LIMIT_EXCEEDED"`) {
		t.Fatalf("batched %s", a.Raw)
	}
	p.Handle("imbot.message.add", nil) // back to the built-in
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"}), "5001")

	p.Handle("custom.method", func(f bitrix24.Form) (any, *bitrix24.Error) {
		return map[string]string{"got": f.String("X")}, nil
	})
	wantResult(t, callForm(t, p, "custom.method", "X=42"), `{"got":"42"}`)

	p.HandleHTTP("scope", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // the body is still readable
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		_, _ = fmt.Fprintf(w, "<html>bad gateway %d</html>", len(b))
	})
	if a := callJSON(t, p, "scope", map[string]any{"a": 1}); a.Status != 502 || a.Raw != "<html>bad gateway 7</html>" {
		t.Fatalf("HandleHTTP %d %s", a.Status, a.Raw)
	}
	if n := len(p.CallsTo("scope")); n != 1 {
		t.Fatalf("HandleHTTP call not recorded: %d", n)
	}
}

// AddMethod's methods get the call and who made it; Handle overrides them and a nil
// Handle brings them back; Builtin runs a built-in method whatever Handle says.
func TestAddMethodAndBuiltin(t *testing.T) {
	p := b24test.New(t)
	var got []b24test.Call
	p.AddMethod("ext.Method", func(c b24test.Call) (any, *bitrix24.Error) {
		got = append(got, c)
		if c.Batched {
			return nil, &bitrix24.Error{Code: "ERROR_BATCH_METHOD_NOT_ALLOWED"}
		}
		return c.Params.String("x"), nil
	})
	wantResult(t, callJSON(t, p, "ext.Method", map[string]any{"x": "1"}), `"1"`)
	a := do(t, p.WebhookURL()+"batch", "application/json", `{"halt":0,"cmd":{"a":"ext.Method?x=2"}}`)
	if !strings.Contains(a.Raw, `"result_error":{"a":{"error":"ERROR_BATCH_METHOD_NOT_ALLOWED"`) {
		t.Fatalf("batched %s", a.Raw)
	}
	if len(got) != 2 || got[0].Auth != "webhook" || got[0].UserID != 1 || got[0].Batched || !got[1].Batched || got[1].Params.String("x") != "2" {
		t.Fatalf("calls %+v", got)
	}
	p.Handle("ext.method", func(bitrix24.Form) (any, *bitrix24.Error) { return "override", nil })
	wantResult(t, callJSON(t, p, "ext.Method", nil), `"override"`)
	p.Handle("ext.method", nil)
	wantResult(t, callJSON(t, p, "ext.Method", map[string]any{"x": "3"}), `"3"`)

	p.Handle("imbot.message.add", func(bitrix24.Form) (any, *bitrix24.Error) { return nil, &bitrix24.Error{Code: "NO"} })
	if id, err := p.Builtin("imbot.message.add", bitrix24.Form{"DIALOG_ID": "27", "MESSAGE": "x"}); err != nil || id != int64(5001) {
		t.Fatalf("Builtin: %v %v", id, err)
	}
	if m := p.Messages("27"); len(m) != 1 || len(p.Calls()) != 5 { // Builtin records nothing
		t.Fatalf("messages %+v, calls %d", m, len(p.Calls()))
	}
}

func TestWaitCallsAndReset(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(p.WebhookURL())
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = c.Call(t.Context(), "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "direct"})
		_, _ = c.Batch(t.Context(), []bitrix24.BatchCommand{
			{Key: "a", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": "27", "MESSAGE": "batched"}},
		}, false)
	}()
	calls := p.WaitCalls(t, "imbot.message.add", 2, 5*time.Second)
	if len(calls) != 2 || calls[0].Batched || !calls[1].Batched || calls[1].Params.String("MESSAGE") != "batched" {
		t.Fatalf("calls %+v", calls)
	}
	p.Reset()
	if n := len(p.Calls()); n != 0 {
		t.Fatalf("%d calls after Reset", n)
	}
	if n := len(p.Messages("27")); n != 2 {
		t.Fatalf("Reset dropped state: %d messages", n)
	}
	// WaitCalls fails the test on timeout.
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		p.WaitCalls(ft, "imbot.message.add", 1, 30*time.Millisecond)
	}()
	<-done
	if !ft.failed {
		t.Fatal("WaitCalls did not fail on timeout")
	}
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	panic("fatal")
}
