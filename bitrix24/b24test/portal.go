package b24test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
)

// Call is one REST call the portal received.
type Call struct {
	Method string
	// Params are the call's parameters as a bracket-form tree whatever the body was
	// (a JSON body is flattened as http_build_query would send it: true as "1", arrays
	// as groups keyed "0", "1", …, null and empty groups left out), so they read the
	// same for a JSON call and a batch sub-command.
	Params bitrix24.Form
	// JSON is the decoded JSON body (numbers as json.Number); nil for form bodies and
	// batch sub-commands.
	JSON    map[string]any
	Batched bool // a sub-command of a batch call
	// Auth is how the call authenticated: "webhook", or the OAuth access token it
	// carried (which is left out of Params).
	Auth string
	// UserID is the user the call acted as: the webhook's user (1), or the token's.
	UserID int64
}

type handler = func(params bitrix24.Form) (any, *bitrix24.Error)

// Portal is the fake portal. Its methods are safe for concurrent use.
type Portal struct {
	srv    *httptest.Server
	base   string // the server root: srv's URL, or NewLocal's base
	secret string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever a call is recorded
	calls    []Call
	handlers map[string]handler
	added    map[string]func(Call) (any, *bitrix24.Error) // AddMethod's
	raw      map[string]http.HandlerFunc
	hung     map[string]bool // chats whose calls hang (HangChat)

	// Chats and messages (methods.go).
	chats    map[int64]*Chat
	messages []Message // message ID firstMessageID+i at i
	nextChat int64

	// Limits (limits.go).
	now         func() time.Time // the clock the limits read (SetClock)
	bucket      bucket
	requests    int // authenticated HTTP requests, run or refused
	rejections  int // requests the bucket refused
	faults      *faults
	faultCounts map[Fault]int
	blocked     map[string]time.Time // lower-case method → blocked until
	done        chan struct{}        // closed when the test ends, to release held answers

	// The application and its tokens (oauth.go).
	oauth              *OAuth // nil for a webhook portal (New)
	clientID           string // the application's client_id; token calls act for it
	memberID, appToken string
	scopes             []string
	admins             map[int64]bool
	tokens             map[string]*accessToken
	grants             map[string]int64 // refresh token → user

	// Bots and commands (bots.go).
	bots             map[int64]*botRecord
	commands         map[int64]*commandRecord
	handlerURLs      map[[2]string]string // {application (APP_ID), event} → bound handler URL
	nextBot, nextCmd int64

	// Placements and users (placements.go).
	placements []*Placement
	names      map[int64][2]string // user → first and last name
	pages      map[string]http.HandlerFunc
}

// New starts a fake portal; it stops when the test ends. It throttles requests like
// a cloud portal (2 a second, 50 at once: see SetRateLimit).
func New(t testing.TB) *Portal {
	t.Helper()
	return newPortal(t, nil)
}

// newPortal starts a portal; o is the OAuth server of the application installed on
// it, or nil for a webhook portal.
func newPortal(t testing.TB, o *OAuth) *Portal {
	p := buildPortal(o)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	p.base = p.srv.URL
	t.Cleanup(func() {
		close(p.done) // release the answers FaultSlow holds: Close waits for running handlers
		p.srv.Close()
	})
	return p
}

// buildPortal is a portal with no server yet.
func buildPortal(o *OAuth) *Portal {
	p := &Portal{secret: randomHex(8), changed: make(chan struct{}), handlers: map[string]handler{}, added: map[string]func(Call) (any, *bitrix24.Error){}, raw: map[string]http.HandlerFunc{}, hung: map[string]bool{},
		chats: map[int64]*Chat{}, nextChat: 1001,
		now: time.Now, bucket: bucket{rate: defaultRate, burst: defaultBurst}, faultCounts: map[Fault]int{}, blocked: map[string]time.Time{}, done: make(chan struct{}),
		oauth: o, clientID: defaultClientID, memberID: randomHex(16), appToken: randomHex(16),
		scopes: slices.Clone(defaultScopes), admins: map[int64]bool{webhookUser: true},
		tokens: map[string]*accessToken{}, grants: map[string]int64{},
		bots: map[int64]*botRecord{}, commands: map[int64]*commandRecord{}, handlerURLs: map[[2]string]string{},
		nextBot: firstBotID, nextCmd: firstCommandID,
		names: map[int64][2]string{}, pages: map[string]http.HandlerFunc{},
	}
	if o != nil {
		p.clientID = o.clientID
	}
	return p
}

// lock locks the portal and returns the unlock, for defer p.lock()().
func (p *Portal) lock() func() {
	p.mu.Lock()
	return p.mu.Unlock
}

// WebhookURL is the inbound webhook base, "http://127.0.0.1:PORT/rest/1/<secret>/".
func (p *Portal) WebhookURL() string {
	return p.base + "/rest/" + itoa(webhookUser) + "/" + p.secret + "/"
}

// URL is the server root.
func (p *Portal) URL() string { return p.base }

// Handle overrides or adds a method; it applies to direct calls and batch
// sub-commands alike. The handler runs without the portal's lock held, so it may call
// the portal's methods; it must not modify params, which are also the recorded
// Call's. A nil handler restores the built-in behaviour.
func (p *Portal) Handle(method string, h func(params bitrix24.Form) (result any, err *bitrix24.Error)) {
	defer p.lock()()
	setOrDelete(p.handlers, method, h, h == nil)
}

// AddMethod adds a method as if built in (Handle overrides it), for packages that
// extend the fake (botv2). m gets the recorded Call, whose Auth and UserID say who
// called; it runs without the portal's lock and must not modify the Call's Params.
func (p *Portal) AddMethod(method string, m func(c Call) (result any, err *bitrix24.Error)) {
	defer p.lock()()
	setOrDelete(p.added, method, m, m == nil)
}

// HandleHTTP takes over the whole HTTP answer for direct calls to method — to send an
// HTML error page, hang, or drop the connection. The call is still recorded first.
// Batch sub-commands are not affected. A nil handler removes it. A handler that hangs
// must return when r.Context() is done, or the test's end waits for it.
func (p *Portal) HandleHTTP(method string, h http.HandlerFunc) {
	defer p.lock()()
	setOrDelete(p.raw, method, h, h == nil)
}

// HangChat makes every call for a chat ("chat1001", or a private chat's "27") hang
// without an answer until the client gives up, as a portal's stuck call does; a batch
// with such a call hangs whole. The call does not run.
func (p *Portal) HangChat(dialogID string) {
	defer p.lock()()
	p.hung[dialogID] = true
}

// hangs reports a call for a chat HangChat named, by its DIALOG_ID or CHAT_ID.
func (p *Portal) hangs(params bitrix24.Form) bool {
	defer p.lock()()
	return len(p.hung) > 0 && (p.hung[params.String("DIALOG_ID")] || p.hung[params.String("dialogId")] || p.hung["chat"+params.String("CHAT_ID")])
}

// setOrDelete sets m[method] (lower case, as Bitrix24 ignores the case of methods),
// or deletes it.
func setOrDelete[V any](m map[string]V, method string, v V, remove bool) {
	if remove {
		delete(m, strings.ToLower(method))
		return
	}
	m[strings.ToLower(method)] = v
}

// Calls returns every recorded call in arrival order. A batch appears as the "batch"
// call followed by each sub-command it ran, with Batched set, in command order.
func (p *Portal) Calls() []Call {
	defer p.lock()()
	return slices.Clone(p.calls)
}

// CallsTo returns the calls to method (compared case-insensitively, as Bitrix24
// does), direct and batched.
func (p *Portal) CallsTo(method string) []Call {
	defer p.lock()()
	return slices.DeleteFunc(slices.Clone(p.calls), func(c Call) bool { return !strings.EqualFold(c.Method, method) })
}

// Reset forgets the recorded calls; chats and messages stay.
func (p *Portal) Reset() {
	defer p.lock()()
	p.calls = nil
}

// WaitCalls waits until at least n calls to method were recorded and returns them all;
// after timeout it fails the test. Call it from the test's goroutine.
func (p *Portal) WaitCalls(t testing.TB, method string, n int, timeout time.Duration) []Call {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		changed := p.changed // before the calls: one recorded after them closes it
		p.mu.Unlock()
		got := p.CallsTo(method)
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("b24test: waited %v for %d calls to %s, got %d", timeout, n, method, len(got))
			return got
		}
	}
}

func (p *Portal) record(c Call) {
	defer p.lock()()
	p.calls = append(p.calls, c)
	close(p.changed)
	p.changed = make(chan struct{})
}

// request is a call as it arrived: its method, its parameters from the query and the
// body, and who made it.
type request struct {
	caller
	r      *http.Request
	method string
	params bitrix24.Form
	json   map[string]any
	body   []byte
	start  time.Time
}

// serveHTTP answers /rest/<user>/<secret>/METHOD[.json] (the webhook) and
// /rest/METHOD[.json] (an application's {client_endpoint}, authorised by its token),
// and the pages of HandlePage.
func (p *Portal) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	page := p.pages[r.URL.Path]
	p.mu.Unlock()
	if page != nil {
		page(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/rest/")
	parts := strings.Split(rest, "/")
	webhook := len(parts) == 3 && parts[0] == itoa(webhookUser) && parts[1] == p.secret
	switch {
	case !ok:
		writeHTML(w, http.StatusNotFound, nginxPage("404 Not Found"))
		return
	case !webhook && len(parts) != 1:
		writeError(w, errNoAuth)
		return
	}
	req, err := readRequest(w, r, parts[len(parts)-1])
	switch {
	case err != nil:
		writeError(w, err)
	case webhook:
		req.caller = caller{userID: webhookUser}
		p.serve(w, req)
	default:
		p.serveToken(w, req)
	}
}

// readRequest reads a call. Its parameters come from the URL query and the body —
// JSON or form-urlencoded with bracket keys, both of which Bitrix24 accepts.
func readRequest(w http.ResponseWriter, r *http.Request, method string) (*request, *bitrix24.Error) {
	req := &request{r: r, method: strings.TrimSuffix(method, ".json"), start: time.Now()}
	var err error
	if req.body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20)); err != nil {
		return nil, &bitrix24.Error{Code: "INVALID_REQUEST", Description: "Request body too large", HTTPStatus: http.StatusRequestEntityTooLarge}
	}
	req.params, err = bitrix24.ParseForm([]byte(r.URL.RawQuery))
	var fromBody bitrix24.Form
	switch {
	case err != nil:
		return nil, wrongRequest("INVALID_REQUEST", "Malformed query string")
	case len(bytes.TrimSpace(req.body)) == 0:
	case isJSON(r):
		dec := json.NewDecoder(bytes.NewReader(req.body))
		dec.UseNumber()
		if dec.Decode(&req.json) != nil {
			return nil, wrongRequest("INVALID_REQUEST", "Malformed JSON body")
		}
		fromBody = formOf(bitrix24.EncodeQuery(req.json))
	default:
		if fromBody, err = bitrix24.ParseForm(req.body); err != nil {
			return nil, wrongRequest("INVALID_REQUEST", "Malformed form body")
		}
	}
	maps.Copy(req.params, fromBody)
	return req, nil
}

// serve answers a call whose credentials are good, as Bitrix24 does: the leaky
// bucket, then any injected fault, then the call.
func (p *Portal) serve(w http.ResponseWriter, req *request) {
	fault, slow, admitted := p.admit(req.method)
	switch {
	case !admitted:
		writeError(w, errQueryLimit)
	case fault != noFault:
		p.serveFaulted(w, req, fault, slow)
	default:
		p.execute(w, req)
	}
}

// execute records and runs a call that got past the limits.
func (p *Portal) execute(w http.ResponseWriter, req *request) {
	if req.method == "" {
		writeError(w, errMethodNotFound)
		return
	}
	call := Call{Method: req.method, Params: req.params, JSON: req.json, Auth: req.name(), UserID: req.userID}
	p.record(call)
	p.mu.Lock()
	raw := p.raw[strings.ToLower(req.method)]
	p.mu.Unlock()
	var result any
	err := p.checkScope(req.caller, req.method)
	until, blocked := p.blockedUntil(req.method)
	switch {
	case err != nil:
	case blocked:
		writeBlocked(w, req.start, until)
		return
	case raw != nil:
		req.r.Body = io.NopCloser(bytes.NewReader(req.body))
		raw(w, req.r)
		return
	case p.hangs(req.params):
		<-req.r.Context().Done() // no answer until the client gives up
		return
	case strings.EqualFold(req.method, "batch"):
		result = p.runBatch(req)
	default:
		result, err = p.dispatch(req.caller, call)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeResult(w, result, req.start)
}

func isJSON(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json")
}

// formOf parses a query, nil if ParseForm cannot take it. formOf(bitrix24.EncodeQuery(obj))
// is a decoded JSON object as PHP would read it sent as a form (http_build_query).
func formOf(query string) bitrix24.Form {
	f, _ := bitrix24.ParseForm([]byte(query))
	return f
}

// The answers.

// Errors answered in several places; nothing changes them.
var (
	errNoAuth         = &bitrix24.Error{Code: "NO_AUTH_FOUND", Description: "Wrong authorization data", HTTPStatus: http.StatusUnauthorized}
	errMethodNotFound = &bitrix24.Error{Code: "ERROR_METHOD_NOT_FOUND", Description: "Method not found!", HTTPStatus: http.StatusNotFound}
	errQueryLimit     = &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests", HTTPStatus: http.StatusServiceUnavailable}
	// A method that used up its processing time (BlockMethod).
	errOperationTimeLimit = &bitrix24.Error{Code: "OPERATION_TIME_LIMIT", Description: "Method is blocked due to operation time limit.",
		HTTPStatus: http.StatusTooManyRequests}
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// wrongRequest builds a method error with Bitrix24's usual 400 status.
func wrongRequest(code, description string) *bitrix24.Error {
	return &bitrix24.Error{Code: code, Description: description, HTTPStatus: http.StatusBadRequest}
}

// phpArray is an ordered map, keys and values alternating, that encodes as PHP's
// json_encode encodes an array: [] when empty, a list when the keys are 0…n-1, else an
// object in insertion order.
type phpArray []any

func (a *phpArray) set(k string, v any) { *a = append(*a, k, v) }

func (a phpArray) MarshalJSON() ([]byte, error) {
	list := true
	for i := 0; i < len(a); i += 2 {
		list = list && a[i] == strconv.Itoa(i/2)
	}
	b, end := []byte{'{'}, byte('}')
	if list {
		b, end = []byte{'['}, ']'
	}
	for i := 0; i < len(a); i += 2 {
		if !list {
			kb, _ := json.Marshal(a[i])
			b = append(append(b, kb...), ':')
		}
		vb, err := json.Marshal(a[i+1])
		if err != nil {
			return nil, err
		}
		b = append(append(b, vb...), ',')
	}
	if len(a) > 0 {
		b = b[:len(b)-1] // the last comma
	}
	return append(b, end), nil
}

func errorBody(e *bitrix24.Error) map[string]string {
	return map[string]string{"error": e.Code, "error_description": e.Description}
}

// dateLayout is how Bitrix24 writes dates: ISO 8601 with the offset.
const dateLayout = "2006-01-02T15:04:05-07:00"

// timing is the "time" block Bitrix24 adds to every answer, keys in its order. Unless
// the method is blocked, operating_reset_at is ten minutes after the start, when its
// oldest one-minute basket of processing time would be dropped (limits.md).
func timing(start, resetAt time.Time) phpArray {
	finish := time.Now()
	took := finish.Sub(start).Seconds()
	return phpArray{"start", float64(start.UnixMicro()) / 1e6, "finish", float64(finish.UnixMicro()) / 1e6,
		"duration", took, "processing", took, "date_start", start.Format(dateLayout), "date_finish", finish.Format(dateLayout),
		"operating_reset_at", resetAt.Unix(), "operating", 0}
}

func writeResult(w http.ResponseWriter, result any, start time.Time) {
	writeJSON(w, http.StatusOK, phpArray{"result", result, "time", timing(start, start.Add(10*time.Minute))})
}

// writeError sends a method error; an error with HTTPStatus 0 is sent as 400, the
// status Bitrix24 uses for method errors.
func writeError(w http.ResponseWriter, e *bitrix24.Error) {
	status := e.HTTPStatus
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, errorBody(e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		body, _ = json.Marshal(errorBody(&bitrix24.Error{Code: "INTERNAL_SERVER_ERROR", Description: err.Error()}))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeHTML sends a page as the nginx in front of Bitrix24 does: outside the REST
// API, and when PHP fails or is out of reach (nginxPage).
func writeHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Server", "nginx")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, page)
}

// nginxPage is nginx's error page.
func nginxPage(status string) string {
	return "<html>\r\n<head><title>" + status + "</title></head>\r\n<body>\r\n" +
		"<center><h1>" + status + "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
}
