package bitrix24_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// secretOf is the webhook code in a base URL ".../rest/1/<secret>/".
func secretOf(t *testing.T, base string) string {
	t.Helper()
	parts := strings.Split(strings.TrimSuffix(base, "/"), "/")
	s := parts[len(parts)-1]
	if len(s) < 8 {
		t.Fatalf("no secret in %q", base)
	}
	return s
}

// assertNoSecret fails when an error or log text shows the webhook secret or URL.
func assertNoSecret(t *testing.T, text, base string) {
	t.Helper()
	secret := secretOf(t, base)
	if strings.Contains(text, secret) || strings.Contains(text, base) || strings.Contains(text, "/rest/") {
		t.Errorf("secret leaked: %q", text)
	}
}

// handServer is a small portal stand-in for edge cases; base is its webhook URL.
func handServer(t *testing.T, h http.HandlerFunc) (base string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/rest/1/s3cr3tw3bh00kc0de/"
}

func writeBody(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func TestCallDecodesResult(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(p.WebhookURL())
	raw, err := c.Call(t.Context(), "imbot.chat.add", map[string]any{
		"BOT_ID": 7, "TYPE": "CHAT", "TITLE": "Ticket #1", "USERS": []int64{27, 31},
		"ENTITY_TYPE": "SUPPORTBOT", "ENTITY_ID": "ticket-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil || id != 1001 {
		t.Fatalf("result %s (%v), want 1001", raw, err)
	}
	chat, ok := p.Chat(1001)
	if !ok || chat.Title != "Ticket #1" || chat.EntityID != "ticket-1" || len(chat.Users) != 2 || chat.Users[1] != 31 {
		t.Fatalf("chat %+v", chat)
	}
	call := p.CallsTo("imbot.chat.add")[0]
	if call.Params.String("USERS", "1") != "31" || call.Params.String("BOT_ID") != "7" || call.JSON == nil {
		t.Fatalf("recorded %+v", call)
	}
}

func TestCallStructParams(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(strings.TrimSuffix(p.WebhookURL(), "/")) // the missing "/" is added
	type messageAdd struct {
		BotID    int64              `json:"BOT_ID"`
		DialogID string             `json:"DIALOG_ID"`
		Message  string             `json:"MESSAGE"`
		Keyboard *bitrix24.Keyboard `json:"KEYBOARD,omitempty"`
	}
	kb := &bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: "Take <it> & go", Command: "take", CommandParams: "1"}}}
	raw, err := c.Call(t.Context(), "imbot.message.add", messageAdd{BotID: 7, DialogID: "27", Message: "a < b & c", Keyboard: kb})
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != "5001" {
		t.Fatalf("result %s", raw)
	}
	msgs := p.Messages("27")
	if len(msgs) != 1 || msgs[0].Text != "a < b & c" {
		t.Fatalf("messages %+v", msgs)
	}
	if b := msgs[0].Buttons(); len(b) != 1 || b[0] != kb.Buttons[0] {
		t.Fatalf("buttons %+v", b)
	}
}

func TestCallNilParams(t *testing.T) {
	var got string
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type") + " " + string(b)
		writeBody(w, 200, "application/json", `{"result":{"scope":["imbot"]},"time":{}}`)
	})
	raw, err := bitrix24.NewClient(base).Call(t.Context(), "scope", nil)
	if err != nil || string(raw) != `{"scope":["imbot"]}` {
		t.Fatalf("Call = %s, %v", raw, err)
	}
	if got != "POST /rest/1/s3cr3tw3bh00kc0de/scope.json application/json {}" {
		t.Fatalf("request %q", got)
	}
	if _, err := bitrix24.NewClient(base).Call(t.Context(), "scope", []int{1}); err == nil {
		t.Fatal("params that are not an object were sent")
	}
}

func TestErrorEnvelope(t *testing.T) {
	p := b24test.New(t)
	_, err := bitrix24.NewClient(p.WebhookURL()).Call(t.Context(), "imbot.message.add",
		map[string]any{"BOT_ID": 7, "MESSAGE": "hi"})
	var be *bitrix24.Error
	if !errors.As(err, &be) {
		t.Fatalf("err %T %v, want *Error", err, err)
	}
	if be.Code != "DIALOG_ID_EMPTY" || be.Method != "imbot.message.add" || be.HTTPStatus != 400 || be.Description != "Dialog ID can't be empty" {
		t.Fatalf("%+v", be)
	}
	if !errors.Is(err, &bitrix24.Error{Code: "dialog_id_empty"}) {
		t.Error("errors.Is does not compare codes case-insensitively")
	}
	if errors.Is(err, bitrix24.ErrQueryLimitExceeded) || be.Temporary() {
		t.Error("DIALOG_ID_EMPTY matched as a rate limit or temporary")
	}
	assertNoSecret(t, err.Error(), p.WebhookURL())
}

// The envelope decides, not the HTTP status.
func TestStatusDoesNotDecide(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantCode  string
		temporary bool
		sentinel  error
		result    string
	}{
		{"200 with an error envelope", 200, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`,
			"QUERY_LIMIT_EXCEEDED", true, bitrix24.ErrQueryLimitExceeded, ""},
		{"503 rate limit", 503, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`,
			"QUERY_LIMIT_EXCEEDED", true, bitrix24.ErrQueryLimitExceeded, ""},
		{"503 overload", 503, `{"error":"OVERLOAD_LIMIT","error_description":"REST API is blocked due to overload"}`,
			"OVERLOAD_LIMIT", true, bitrix24.ErrOverloadLimit, ""},
		{"429 operation time", 429, `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit."}`,
			"OPERATION_TIME_LIMIT", true, bitrix24.ErrOperationTimeLimit, ""},
		{"401 expired token", 401, `{"error":"expired_token","error_description":"The access token provided has expired."}`,
			"expired_token", false, bitrix24.ErrExpiredToken, ""},
		{"401 no auth", 401, `{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}`,
			"NO_AUTH_FOUND", false, bitrix24.ErrNoAuthFound, ""},
		{"401 invalid token", 401, `{"error":"invalid_token","error_description":"The access token provided is invalid."}`,
			"invalid_token", false, bitrix24.ErrInvalidToken, ""},
		{"403 scope", 403, `{"error":"insufficient_scope","error_description":""}`,
			"insufficient_scope", false, bitrix24.ErrInsufficientScope, ""},
		{"403 access denied", 403, `{"error":"ACCESS_DENIED","error_description":"REST API is available only on commercial plans"}`,
			"ACCESS_DENIED", false, bitrix24.ErrAccessDenied, ""},
		{"404 method", 404, `{"error":"ERROR_METHOD_NOT_FOUND","error_description":"Method not found!"}`,
			"ERROR_METHOD_NOT_FOUND", false, bitrix24.ErrMethodNotFound, ""},
		{"500 internal", 500, `{"error":"INTERNAL_SERVER_ERROR","error_description":"Internal server error"}`,
			"INTERNAL_SERVER_ERROR", true, nil, ""},
		{"500 with an unknown code", 500, `{"error":"SOMETHING_NEW","error_description":""}`,
			"SOMETHING_NEW", true, nil, ""},
		{"500 portal deleted is permanent", 500, `{"error":"PORTAL_DELETED","error_description":"Portal was deleted"}`,
			"PORTAL_DELETED", false, nil, ""},
		{"400 method error", 400, `{"error":"WRONG_REQUEST","error_description":"Message isn't added"}`,
			"WRONG_REQUEST", false, nil, ""},
		{"a result with an odd status", 202, `{"result":true,"time":{"start":1}}`, "", false, nil, "true"},
		{"a null result", 200, `{"result":null}`, "", false, nil, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
				writeBody(w, tt.status, "application/json; charset=utf-8", tt.body)
			})
			raw, err := bitrix24.NewClient(base).Call(t.Context(), "imbot.message.add", map[string]any{"DIALOG_ID": "27"})
			if tt.wantCode == "" {
				if err != nil || string(raw) != tt.result {
					t.Fatalf("Call = %s, %v; want %s", raw, err, tt.result)
				}
				return
			}
			var be *bitrix24.Error
			if !errors.As(err, &be) {
				t.Fatalf("err %T %v, want *Error", err, err)
			}
			if be.Code != tt.wantCode || be.HTTPStatus != tt.status || be.Temporary() != tt.temporary {
				t.Fatalf("%+v temporary=%v", be, be.Temporary())
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			var te *bitrix24.TransportError
			if errors.As(err, &te) {
				t.Fatal("an envelope error is also a TransportError")
			}
			assertNoSecret(t, err.Error(), base)
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &bitrix24.Error{Method: "imbot.message.add", Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests", HTTPStatus: 503}
	if got, want := e.Error(), "bitrix24 imbot.message.add: QUERY_LIMIT_EXCEEDED: Too many requests (HTTP 503)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := bitrix24.ErrExpiredToken.Error(), "bitrix24: expired_token"; got != want {
		t.Errorf("sentinel Error() = %q, want %q", got, want)
	}
	if errors.Is(e, &bitrix24.Error{}) || errors.Is(e, errors.New("QUERY_LIMIT_EXCEEDED")) {
		t.Error("Is matched an empty code or a foreign error")
	}
	wrapped := fmt.Errorf("sending reply: %w", e)
	if !errors.Is(wrapped, bitrix24.ErrQueryLimitExceeded) {
		t.Error("errors.Is fails through wrapping")
	}
}

func TestHTMLErrorPageIsTransportError(t *testing.T) {
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		// Proxies under load answer with a page that may even echo the request path.
		writeBody(w, 502, "text/html", "<html><body>502 Bad Gateway "+r.URL.Path+"</body></html>")
	})
	_, err := bitrix24.NewClient(base).Call(t.Context(), "imbot.message.add", map[string]any{"DIALOG_ID": "27"})
	var te *bitrix24.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("err %T %v, want *TransportError", err, err)
	}
	if te.HTTPStatus != 502 || !te.MaybeSent || te.Method != "imbot.message.add" {
		t.Fatalf("%+v", te)
	}
	var be *bitrix24.Error
	if errors.As(err, &be) {
		t.Fatal("an HTML page became a Bitrix24 error")
	}
	assertNoSecret(t, err.Error(), base)
}

func TestEnvelopeWithoutResult(t *testing.T) {
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, "application/json", `{"time":{}}`)
	})
	_, err := bitrix24.NewClient(base).Call(t.Context(), "scope", nil)
	var te *bitrix24.TransportError
	if !errors.As(err, &te) || te.HTTPStatus != 200 || !te.MaybeSent {
		t.Fatalf("err %T %v", err, err)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr + "/rest/1/s3cr3tw3bh00kc0de/"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err = bitrix24.NewClient(base, bitrix24.WithLogger(logger)).Call(t.Context(), "imbot.message.add", map[string]any{"DIALOG_ID": "27"})
	var te *bitrix24.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("err %T %v", err, err)
	}
	if te.MaybeSent || te.HTTPStatus != 0 || te.Host != addr {
		t.Fatalf("%+v", te)
	}
	if !strings.Contains(err.Error(), "imbot.message.add") || !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name method and host: %q", err)
	}
	assertNoSecret(t, err.Error(), base)
	assertNoSecret(t, logs.String(), base)
	if !strings.Contains(logs.String(), "imbot.message.add") {
		t.Errorf("nothing logged: %q", logs.String())
	}
}

func TestTimeoutAfterSendingMaySend(t *testing.T) {
	var got atomic.Int32
	release := make(chan struct{})
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		select { // hang until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	_, err := bitrix24.NewClient(base).Call(ctx, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "hi"})
	var te *bitrix24.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("err %T %v", err, err)
	}
	if !te.MaybeSent || te.HTTPStatus != 0 || got.Load() != 1 {
		t.Fatalf("%+v (server saw %d)", te, got.Load())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause lost: %v", err)
	}
	assertNoSecret(t, err.Error(), base)
}

func TestHTTPClientTimeoutMaySend(t *testing.T) {
	release := make(chan struct{})
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := bitrix24.NewClient(base, bitrix24.WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	_, err := c.Call(t.Context(), "imbot.message.add", nil)
	var te *bitrix24.TransportError
	if !errors.As(err, &te) || !te.MaybeSent {
		t.Fatalf("err %T %v", err, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("timeout cause lost: %v", err)
	}
	assertNoSecret(t, err.Error(), base)
}

func TestCancelledBeforeSendingSurelyNotSent(t *testing.T) {
	var got atomic.Int32
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) { got.Add(1) })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := bitrix24.NewClient(base).Call(ctx, "imbot.message.add", nil)
	var te *bitrix24.TransportError
	if !errors.As(err, &te) || te.MaybeSent || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %T %v", err, err)
	}
	if got.Load() != 0 {
		t.Fatal("a cancelled call reached the server")
	}
}

// A connection reset after the request was written: it may have run.
func TestResetAfterSendingMaySend(t *testing.T) {
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST instead of FIN
			}
			conn.Close()
		}
	})
	_, err := bitrix24.NewClient(base).Call(t.Context(), "imbot.message.add", map[string]any{"DIALOG_ID": "27"})
	var te *bitrix24.TransportError
	if !errors.As(err, &te) || !te.MaybeSent || te.HTTPStatus != 0 {
		t.Fatalf("err %T %v", err, err)
	}
	assertNoSecret(t, err.Error(), base)
}

func TestResponseSizeCapped(t *testing.T) {
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":"`)
		chunk := strings.Repeat("x", 1<<16)
		for range 9 << 4 { // 9 MiB
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}`)
	})
	_, err := bitrix24.NewClient(base).Call(t.Context(), "scope", nil)
	var te *bitrix24.TransportError
	if !errors.As(err, &te) || !te.MaybeSent || te.HTTPStatus != 200 {
		t.Fatalf("err %T %v", err, err)
	}
}

func TestBadBaseAndMethod(t *testing.T) {
	const bad = "portal.bitrix24.ru/rest/1/s3cr3tw3bh00kc0de/"
	_, err := bitrix24.NewClient(bad).Call(t.Context(), "scope", nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3tw3bh00kc0de") {
		t.Fatalf("bad base: %v", err)
	}
	var got atomic.Int32
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) { got.Add(1) })
	for _, m := range []string{"", "../../profile", "scope?x=1", "a/b", "im bot"} {
		if _, err := bitrix24.NewClient(base).Call(t.Context(), m, nil); err == nil {
			t.Errorf("method %q accepted", m)
		}
	}
	if got.Load() != 0 {
		t.Fatal("an invalid method was sent")
	}
}

func TestClientDoesNotPrintSecret(t *testing.T) {
	base := "https://portal.bitrix24.ru/rest/1/s3cr3tw3bh00kc0de/"
	c := bitrix24.NewClient(base)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "s3cr3tw3bh00kc0de") {
			t.Errorf("printed %q", s)
		}
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("client", "c", c)
	assertNoSecret(t, logs.String(), base)
}

func TestWithClientID(t *testing.T) {
	p := b24test.New(t)
	p.Handle("scope", func(bitrix24.Form) (any, *bitrix24.Error) { return []string{"imbot"}, nil })
	p.Handle("user.current", func(bitrix24.Form) (any, *bitrix24.Error) { return map[string]any{"ID": "1"}, nil })
	p.Handle("imbot.v2.Chat.Message.send", func(bitrix24.Form) (any, *bitrix24.Error) { return true, nil })
	c := bitrix24.NewClient(p.WebhookURL(), bitrix24.WithClientID("app.abc123"))
	ctx := t.Context()

	type structParams struct {
		DialogID string `json:"DIALOG_ID"`
		Message  string `json:"MESSAGE"`
	}
	calls := []struct {
		method string
		params any
		want   string
	}{
		{"imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "a"}, "app.abc123"},
		{"imbot.message.add", structParams{DialogID: "27", Message: "b"}, "app.abc123"},
		{"imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "c", "CLIENT_ID": "other"}, "other"},
		{"IMBOT.MESSAGE.ADD", map[string]any{"DIALOG_ID": "27", "MESSAGE": "d"}, "app.abc123"},
		{"scope", nil, ""},
		{"imbot.v2.Chat.Message.send", map[string]any{"dialogId": "27"}, ""},
	}
	for i, cl := range calls {
		if _, err := c.Call(ctx, cl.method, cl.params); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got := p.Calls()[i].Params.String("CLIENT_ID")
		if got != cl.want {
			t.Errorf("call %d %s: CLIENT_ID %q, want %q", i, cl.method, got, cl.want)
		}
	}
	// Lower-case client_id counts as present: Bitrix24 upper-cases keys.
	p.Reset()
	if _, err := c.Call(ctx, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "e", "client_id": "x"}); err != nil {
		t.Fatal(err)
	}
	if call := p.Calls()[0]; call.Params.String("CLIENT_ID") != "" || call.Params.String("client_id") != "x" {
		t.Errorf("added a second CLIENT_ID: %+v", call.Params)
	}

	p.Reset()
	caller := map[string]any{"DIALOG_ID": "27", "MESSAGE": "f"}
	res, err := c.Batch(ctx, []bitrix24.BatchCommand{
		{Key: "m", Method: "imbot.message.add", Params: caller},
		{Key: "u", Method: "user.current"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("results %+v", res)
	}
	all := p.Calls()
	if len(all) != 3 || all[0].Method != "batch" || all[0].Params.String("CLIENT_ID") != "" {
		t.Fatalf("calls %+v", all)
	}
	if all[1].Params.String("CLIENT_ID") != "app.abc123" || all[2].Params.String("CLIENT_ID") != "" {
		t.Errorf("batch sub-commands: %+v / %+v", all[1].Params, all[2].Params)
	}
	if _, ok := caller["CLIENT_ID"]; ok {
		t.Error("the caller's params map was modified")
	}
}

func TestBatchMapsResults(t *testing.T) {
	p := b24test.New(t)
	chatID := p.AddChat(b24test.Chat{Title: "Support"})
	c := bitrix24.NewClient(p.WebhookURL())
	cmds := []bitrix24.BatchCommand{
		// Keys out of alphabetical order: the portal must run them in this order.
		{Key: "zeta", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": bitrix24.GroupChat(chatID), "MESSAGE": "first"}},
		{Key: "alpha", Method: "imbot.message.add", Params: map[string]any{"MESSAGE": "no dialog"}},
		{Key: "mid_1", Method: "imbot.chat.updateTitle", Params: map[string]any{"CHAT_ID": chatID, "TITLE": "Support [closed]"}},
		{Key: "b", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": "27", "MESSAGE": "second",
			"KEYBOARD": bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: "OK", Command: "ok"}}}}},
	}
	res, err := c.Batch(t.Context(), cmds, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if r.Key != cmds[i].Key {
			t.Errorf("result %d key %q", i, r.Key)
		}
	}
	if res[0].Err != nil || string(res[0].Result) != "5001" {
		t.Errorf("zeta: %+v", res[0])
	}
	var be *bitrix24.Error
	if !errors.As(res[1].Err, &be) || be.Code != "DIALOG_ID_EMPTY" || be.Method != "imbot.message.add" || be.Description == "" {
		t.Errorf("alpha: %+v", res[1])
	}
	if res[2].Err != nil || string(res[2].Result) != "true" {
		t.Errorf("mid_1: %+v", res[2])
	}
	if res[3].Err != nil || string(res[3].Result) != "5002" {
		t.Errorf("b: %+v", res[3])
	}
	var order []string
	for _, call := range p.Calls() {
		order = append(order, call.Method+"/"+call.Params.String("MESSAGE")+call.Params.String("TITLE"))
	}
	want := "batch/ imbot.message.add/first imbot.message.add/no dialog imbot.chat.updateTitle/Support [closed] imbot.message.add/second"
	if strings.Join(order, " ") != want {
		t.Errorf("portal ran\n %v\nwant\n %v", strings.Join(order, " "), want)
	}
	if chat, _ := p.Chat(chatID); chat.Title != "Support [closed]" {
		t.Errorf("title %q", chat.Title)
	}
	if b := p.Messages("27")[0].Buttons(); len(b) != 1 || b[0].Command != "ok" {
		t.Errorf("keyboard through batch: %+v", b)
	}
}

func TestBatchHalt(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(p.WebhookURL())
	res, err := c.Batch(t.Context(), []bitrix24.BatchCommand{
		{Key: "a", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": "27", "MESSAGE": "ok"}},
		{Key: "b", Method: "imbot.message.update", Params: map[string]any{"MESSAGE_ID": 999, "MESSAGE": "x"}},
		{Key: "c", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": "27", "MESSAGE": "never"}},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || !errors.Is(res[1].Err, &bitrix24.Error{Code: "CANT_EDIT_MESSAGE"}) || !errors.Is(res[2].Err, bitrix24.ErrBatchSkipped) {
		t.Fatalf("%+v", res)
	}
	if n := len(p.Messages("27")); n != 1 {
		t.Fatalf("%d messages; the halted command ran", n)
	}
}

// Numeric keys make PHP encode result and result_error as lists.
func TestBatchNumericKeys(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(p.WebhookURL())
	res, err := c.Batch(t.Context(), []bitrix24.BatchCommand{
		{Key: "0", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": "27", "MESSAGE": "a"}},
		{Key: "1", Method: "imbot.message.add", Params: map[string]any{"DIALOG_ID": "28", "MESSAGE": "b"}},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(res[0].Result) != "5001" || string(res[1].Result) != "5002" {
		t.Fatalf("%+v", res)
	}
}

func TestBatchLimitsAndValidation(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(p.WebhookURL())
	ctx := t.Context()
	var many []bitrix24.BatchCommand
	for i := range 51 {
		many = append(many, bitrix24.BatchCommand{Key: fmt.Sprintf("k%d", i), Method: "imbot.message.add",
			Params: map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"}})
	}
	if _, err := c.Batch(ctx, many, false); !errors.Is(err, bitrix24.ErrBatchTooLarge) {
		t.Fatalf("51 commands: %v", err)
	}
	if res, err := c.Batch(ctx, many[:50], false); err != nil || len(res) != 50 || res[49].Err != nil {
		t.Fatalf("50 commands: %v", err)
	}
	p.Reset()
	bad := [][]bitrix24.BatchCommand{
		{{Key: "a", Method: "scope"}, {Key: "a", Method: "scope"}},
		{{Key: "a b", Method: "scope"}},
		{{Key: "a[0]", Method: "scope"}},
		{{Key: "", Method: "scope"}},
		{{Key: "a", Method: "scope?x=1"}},
		{{Key: "a", Method: "batch"}},
	}
	for i, cmds := range bad {
		if _, err := c.Batch(ctx, cmds, false); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	if res, err := c.Batch(ctx, nil, false); err != nil || res != nil {
		t.Errorf("empty batch: %v %v", res, err)
	}
	if n := len(p.Calls()); n != 0 {
		t.Fatalf("%d calls sent for invalid batches", n)
	}
}

func TestBatchEnvelopeError(t *testing.T) {
	p := b24test.New(t)
	wrong := strings.Replace(p.WebhookURL(), "/rest/1/", "/rest/2/", 1)
	_, err := bitrix24.NewClient(wrong).Batch(t.Context(), []bitrix24.BatchCommand{{Key: "a", Method: "scope"}}, false)
	if !errors.Is(err, bitrix24.ErrNoAuthFound) {
		t.Fatalf("err %v", err)
	}
	var be *bitrix24.Error
	if errors.As(err, &be); be.HTTPStatus != 401 || be.Method != "batch" {
		t.Fatalf("%+v", be)
	}
	assertNoSecret(t, err.Error(), p.WebhookURL())

	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 503, "application/json", `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`)
	})
	_, err = bitrix24.NewClient(base).Batch(t.Context(), []bitrix24.BatchCommand{{Key: "a", Method: "scope"}}, false)
	if !errors.Is(err, bitrix24.ErrQueryLimitExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestBatchRawShape(t *testing.T) {
	var body []byte
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		writeBody(w, 200, "application/json", `{"result":{"result":{"x":[1,2]},"result_error":{"y":{"error":"ACCESS_DENIED","error_description":"no"},"z":"ODD"},"result_total":[],"result_next":[],"result_time":[]},"time":{}}`)
	})
	res, err := bitrix24.NewClient(base, bitrix24.WithClientID("cid")).Batch(t.Context(), []bitrix24.BatchCommand{
		{Key: "x", Method: "user.get", Params: map[string]any{"ID": 1}},
		{Key: "y", Method: "imbot.chat.get", Params: map[string]any{"ENTITY_TYPE": "A&B"}},
		{Key: "z", Method: "scope"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"halt":1,"cmd":{"x":"user.get?ID=1","y":"imbot.chat.get?CLIENT_ID=cid&ENTITY_TYPE=A%26B","z":"scope"}}`
	if string(body) != want {
		t.Errorf("body\n %s\nwant\n %s", body, want)
	}
	if string(res[0].Result) != "[1,2]" || !errors.Is(res[1].Err, bitrix24.ErrAccessDenied) || !errors.Is(res[2].Err, &bitrix24.Error{Code: "ODD"}) {
		t.Fatalf("%+v", res)
	}
}

func TestClientConcurrentUse(t *testing.T) {
	p := b24test.New(t)
	c := bitrix24.NewClient(p.WebhookURL())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := c.Call(t.Context(), "imbot.message.add", map[string]any{"DIALOG_ID": fmt.Sprint(100 + i), "MESSAGE": "m"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	p.WaitCalls(t, "imbot.message.add", 20, time.Second)
}

// TestBotTokenNeverInErrors: a v2 bot's token travels in the body; a portal that
// quotes the request in its error does not put it into the error text, which is
// logged and stored.
func TestBotTokenNeverInErrors(t *testing.T) {
	p := b24test.New(t)
	const token, rotated = "b0tt0k3n-0f-th3-b0t", "n3w-b0tt0k3n-r0tat3d"
	for _, method := range []string{"imbot.v2.Chat.Message.send", "imbot.v2.Bot.update"} {
		p.Handle(method, func(f bitrix24.Form) (any, *bitrix24.Error) {
			return nil, &bitrix24.Error{Code: "BOT_OWNERSHIP_ERROR", Description: "bad token " + f.String("botToken") + " / " + f.String("fields", "botToken")}
		})
	}
	var logs bytes.Buffer
	c := bitrix24.NewClient(p.WebhookURL(), bitrix24.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	_, err1 := c.Call(t.Context(), "imbot.v2.Chat.Message.send", map[string]any{"botId": 1, "botToken": token, "dialogId": "1"})
	_, err2 := c.Call(t.Context(), "imbot.v2.Bot.update", map[string]any{"botId": 1, "botToken": token, "fields": map[string]any{"botToken": rotated}})
	for _, err := range []error{err1, err2} {
		if err == nil || !strings.Contains(err.Error(), "BOT_OWNERSHIP_ERROR") {
			t.Fatalf("error %v", err)
		}
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), rotated) {
			t.Errorf("the bot token is in the error: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "BOT_OWNERSHIP_ERROR") || strings.Contains(logs.String(), token) || strings.Contains(logs.String(), rotated) {
		t.Errorf("log: %s", logs.String())
	}
}

// TestV2URLForm: imbot.v2 methods are called at the URL of the docs' examples,
// .../rest/USER/SECRET/imbot.v2.Chat.Message.send, v1 methods with ".json".
func TestV2URLForm(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, `{"result":true}`)
	}))
	defer srv.Close()
	c := bitrix24.NewClient(srv.URL + "/rest/1/abcdef123456/")
	for _, m := range []string{"imbot.v2.Chat.Message.send", "imbot.message.add"} {
		if _, err := c.Call(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"/rest/1/abcdef123456/imbot.v2.Chat.Message.send", "/rest/1/abcdef123456/imbot.message.add.json"}; fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
}
