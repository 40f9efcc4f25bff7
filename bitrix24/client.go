package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// MaxBatch is the most commands Bitrix24 runs in one batch call.
	MaxBatch = 50

	// defaultTimeout matches the portal's own: cloud requests are cut off after 60 s,
	// so waiting longer only delays the retry.
	defaultTimeout = 60 * time.Second

	// maxResponseBytes caps what is read from the portal (or whatever answers in its
	// place), so a hostile or broken server cannot make us buffer without end. The
	// largest legitimate answers (a 50-command batch of list methods) stay far below.
	maxResponseBytes = 8 << 20
)

// Client calls one portal's REST API through an inbound webhook. It is safe for
// concurrent use.
type Client struct {
	base     string // ".../rest/USER_ID/SECRET/": holds the secret, never printed
	host     string
	baseErr  error
	redact   *strings.Replacer
	http     *http.Client
	clientID string
	log      *slog.Logger
	limiter  Pacer
	observer Observer
	tokens   TokenSource // set: an application's client, authenticated by access token
}

// Observer is told about every request, for metrics.
type Observer interface {
	// ObserveCall: one HTTP request to method ("batch" for a batch) ended with outcome:
	// "ok", the portal's error code, or "transport" when no envelope came back.
	ObserveCall(method, outcome string, d time.Duration)
	// ObserveRateLimitWait: a request waited d for room in the portal's bucket.
	ObserveRateLimitWait(d time.Duration)
}

// WithLimiter paces every request through l, which every client of the same portal
// must share.
func WithLimiter(l *Limiter) Option {
	return func(c *Client) {
		if l != nil { // a nil *Limiter in the interface would not compare nil
			c.limiter = l
		}
	}
}

// WithPacer paces every request through p: a share of the portal's limiter for
// requests of lower priority.
func WithPacer(p Pacer) Option { return func(c *Client) { c.limiter = p } }

// WithObserver reports every request to o.
func WithObserver(o Observer) Option { return func(c *Client) { c.observer = o } }

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client; the default has a 60 s timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithClientID sets the CLIENT_ID that bots registered through a webhook must pass to
// every imbot.* method (inside batch commands too). It is added only where the
// parameters lack one. imbot.v2.* authenticates with botToken instead and is left alone.
func WithClientID(clientID string) Option {
	return func(c *Client) { c.clientID = clientID }
}

// WithLogger sets the logger for per-call debug records (method, host, status,
// duration; never the URL, which holds the secret). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// NewClient returns a client for the inbound webhook base
// "https://PORTAL/rest/USER_ID/SECRET/"; a missing final "/" is added. An unusable base
// is reported by every call rather than here, so configuration code stays simple.
func NewClient(base string, opts ...Option) *Client {
	base = strings.TrimSpace(base)
	if base != "" && !strings.HasSuffix(base, "/") {
		base += "/"
	}
	c := &Client{
		base: base,
		http: &http.Client{Timeout: defaultTimeout},
		log:  slog.New(slog.DiscardHandler),
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not wrapping err: url.Parse errors quote the whole URL, secret included.
		c.baseErr = errors.New("bitrix24: the webhook URL is not an absolute http(s) URL")
		u = nil
	} else {
		c.host = u.Host
	}
	c.redact = newRedactor(base, u)
	for _, o := range opts {
		o(c)
	}
	return c
}

// newRedactor replaces every form in which the webhook secret could show up in an
// error message: the base itself, its path, and the path's secret-looking segments.
func newRedactor(base string, u *url.URL) *strings.Replacer {
	secrets := []string{base}
	if u != nil {
		if u.Path != "" && u.Path != "/" && strings.Count(strings.Trim(u.Path, "/"), "/") > 0 {
			secrets = append(secrets, u.Path, u.EscapedPath())
		}
		for _, seg := range strings.Split(strings.Trim(u.Path, "/"), "/") {
			// "rest" and the numeric user ID are not secret; the webhook code is.
			if len(seg) >= 6 && seg != "rest" {
				secrets = append(secrets, seg, url.PathEscape(seg))
			}
		}
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p)
		}
		if u.RawQuery != "" {
			secrets = append(secrets, u.RawQuery)
		}
	}
	// Longest first, so a secret inside a longer one is not half-replaced.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	var pairs []string
	for _, s := range secrets {
		if s != "" {
			pairs = append(pairs, s, "***")
		}
	}
	return strings.NewReplacer(pairs...)
}

// Paced is a copy of the client (the same portal, tokens and observer) whose requests
// go through p instead: the same application's calls of lower priority.
func (c *Client) Paced(p Pacer) *Client {
	cp := *c
	cp.limiter = p
	return &cp
}

// Reserve waits, under wait, for a place in the portal's bucket and takes it for the
// next request made under the returned child of ctx, which then does not wait again.
// A caller that holds something scarce while a request is under way (the
// dispatcher's slots, shared by every portal) waits for the portal's bucket before
// taking it, not while holding it. The place is counted when it is reserved, so the
// request may reach the portal later than the limiter counted it, and closer to the
// next: a caller reserves for one request at a time (the dispatcher's sender reserves
// its next only once the last has its slot), so the portal sees at most one more than
// the limiter, which the place it keeps in reserve covers. A place reserved and not
// used is spent, as a request the portal never saw.
func (c *Client) Reserve(wait, ctx context.Context) (context.Context, error) {
	if c.limiter == nil {
		return ctx, nil
	}
	waited, err := c.limiter.Wait(wait)
	if err != nil {
		return ctx, err
	}
	if waited > 0 && c.observer != nil {
		c.observer.ObserveRateLimitWait(waited)
	}
	return context.WithValue(ctx, reservedKey{}, new(atomic.Bool)), nil
}

type reservedKey struct{}

// usesReserved reports that ctx carries a place Reserve took, and spends it.
func usesReserved(ctx context.Context) bool {
	used, ok := ctx.Value(reservedKey{}).(*atomic.Bool)
	return ok && used.CompareAndSwap(false, true)
}

// AssumeBucketFull makes the client's limiter start from a full bucket: another
// process (a replica that sent to the portal until a moment ago) may have used it.
func (c *Client) AssumeBucketFull() {
	if c.limiter != nil {
		c.limiter.Fill()
	}
}

// String names the client by host only, so printing it cannot leak the secret.
// ReloadTokens makes an application's client take its portal's stored OAuth
// tokens if another replica renewed them (see OAuthTokens.LoadWith): a replica that
// takes a portal over calls it.
func (c *Client) ReloadTokens(ctx context.Context) error {
	if r, ok := c.tokens.(interface{ Reload(context.Context) error }); ok {
		return r.Reload(ctx)
	}
	return nil
}

func (c *Client) String() string { return "bitrix24.Client(" + c.host + ")" }

// GoString keeps %#v from printing the base URL.
func (c *Client) GoString() string { return c.String() }

// LogValue keeps the secret out of structured logs.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.host) }

// Call posts params as a JSON body to {base}{method}.json and decodes the envelope
// {"result":…,"time":{…}} or {"error":"CODE","error_description":"…"}. params may be
// nil, a map or any value that encodes as a JSON object. The error is an *Error when
// the portal answered with an error code, a *TransportError when no envelope came back.
func (c *Client) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	if !validMethod(method) {
		return nil, errInvalidMethod(method)
	}
	body, err := c.encodeParams(method, params)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, method, body, bodySecrets(params))
}

// bodySecrets are the secrets a call carries in its body: a v2 bot's botToken (the
// current one, and in fields a new one). The portal's answer may quote the request,
// and what it says goes into logs and stored error texts.
func bodySecrets(params any) []string {
	var out []string
	m, _ := params.(map[string]any)
	fields, _ := m["fields"].(map[string]any)
	for _, v := range []any{m["botToken"], fields["botToken"]} {
		if s, _ := v.(string); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// BatchCommand is one command of a batch call.
type BatchCommand struct {
	Key    string // unique within the batch; letters, digits and '_'
	Method string
	Params map[string]any
}

// BatchResult is the outcome of one batch command.
type BatchResult struct {
	Key    string
	Result json.RawMessage
	// Err is an *Error when the portal reported one for this command, ErrBatchSkipped
	// when the command did not run because the batch halted.
	Err error
}

// Batch sends up to MaxBatch commands as one batch call ({"halt":0|1,"cmd":{key:
// "method?query"}}), which the portal counts as one request, and returns one result
// per command, in order. More than MaxBatch commands is ErrBatchTooLarge: splitting
// silently would break halt. An error for the batch as a whole (rate limit, auth,
// transport) is returned as the error, with no results.
func (c *Client) Batch(ctx context.Context, cmds []BatchCommand, halt bool) ([]BatchResult, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	if len(cmds) > MaxBatch {
		return nil, fmt.Errorf("%w: got %d", ErrBatchTooLarge, len(cmds))
	}
	// The body is written by hand because Bitrix24 runs the commands in the order of
	// the cmd object, and encoding/json would sort a map's keys: replies to one chat
	// must keep their order.
	var body bytes.Buffer
	body.WriteString(`{"halt":`)
	if halt {
		body.WriteString("1")
	} else {
		body.WriteString("0")
	}
	body.WriteString(`,"cmd":{`)
	seen := make(map[string]bool, len(cmds))
	for i, bc := range cmds {
		if !validKey(bc.Key) {
			return nil, fmt.Errorf("bitrix24: batch key %q: use 1-64 letters, digits or '_'", truncate(bc.Key))
		}
		if seen[bc.Key] {
			return nil, fmt.Errorf("bitrix24: batch key %q is used twice", bc.Key)
		}
		seen[bc.Key] = true
		if !validMethod(bc.Method) {
			return nil, errInvalidMethod(bc.Method)
		}
		if strings.EqualFold(bc.Method, "batch") {
			return nil, errors.New("bitrix24: a batch cannot contain another batch")
		}
		params := bc.Params
		if c.needsClientID(bc.Method) && !hasKeyFold(params, "CLIENT_ID") {
			params = withKey(params, "CLIENT_ID", c.clientID)
		}
		cmd := bc.Method
		if q := EncodeQuery(params); q != "" {
			cmd += "?" + q
		}
		if i > 0 {
			body.WriteByte(',')
		}
		writeJSONString(&body, bc.Key)
		body.WriteByte(':')
		writeJSONString(&body, cmd)
	}
	body.WriteString("}}")

	raw, err := c.do(ctx, "batch", body.Bytes(), nil)
	if err != nil {
		return nil, err
	}
	var env struct {
		Result      json.RawMessage `json:"result"`
		ResultError json.RawMessage `json:"result_error"`
		ResultTime  json.RawMessage `json:"result_time"`
	}
	// The portal answered, so the commands may have run, whatever the answer's shape:
	// one it cannot be read is a transport error that may have been sent.
	unreadable := func(what string, err error) error {
		return &TransportError{Method: "batch", Host: c.host, HTTPStatus: http.StatusOK, MaybeSent: true,
			Err: fmt.Errorf("unexpected %s: %w", what, err)}
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, unreadable("answer", err)
	}
	results, err := phpArray(env.Result)
	if err != nil {
		return nil, unreadable("result", err)
	}
	failures, err := phpArray(env.ResultError)
	if err != nil {
		return nil, unreadable("result_error", err)
	}
	times, _ := phpArray(env.ResultTime) // only for operating_reset_at; optional
	out := make([]BatchResult, len(cmds))
	for i, bc := range cmds {
		out[i].Key = bc.Key
		if fe, ok := failures[bc.Key]; ok {
			be := c.redactError(batchError(bc.Method, fe))
			be.ResetAt = operatingResetAt(times[bc.Key])
			out[i].Err = be
			continue
		}
		if r, ok := results[bc.Key]; ok {
			out[i].Result = r
			continue
		}
		out[i].Err = ErrBatchSkipped
	}
	return out, nil
}

// do sends one request, with the application's access token if there is one; an
// expired token is refreshed once and the request sent again.
func (c *Client) do(ctx context.Context, method string, body []byte, secrets []string) (json.RawMessage, error) {
	if c.tokens == nil {
		return c.send(ctx, method, body, "", secrets)
	}
	token, err := c.tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	result, err := c.send(ctx, method, body, token, secrets)
	if !errors.Is(err, ErrExpiredToken) {
		return result, err
	}
	if token, err = c.tokens.Refresh(ctx, token); err != nil {
		return nil, &RefreshError{Method: method, Err: err}
	}
	return c.send(ctx, method, body, token, secrets)
}

// send sends one request. It is the single place requests go through: the rate
// limiter and the metrics see every one.
func (c *Client) send(ctx context.Context, method string, body []byte, token string, secrets []string) (json.RawMessage, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	if err := ctx.Err(); err != nil {
		return nil, &TransportError{Method: method, Host: c.host, Err: err}
	}
	if c.limiter != nil && !usesReserved(ctx) {
		waited, err := c.limiter.Wait(ctx)
		if err != nil {
			return nil, &TransportError{Method: method, Host: c.host, Err: err}
		}
		if waited > 0 && c.observer != nil {
			c.observer.ObserveRateLimitWait(waited)
		}
	}
	if err := checkFence(ctx); err != nil {
		return nil, &TransportError{Method: method, Host: c.host, Err: err}
	}
	start := time.Now()
	// WroteRequest tells "surely not run" (never written: dial, DNS, refused, cancelled
	// while connecting) from "may have run" (written, then the answer was lost).
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			// A failed write left the portal a truncated body, which PHP does not run.
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	}
	target := c.base + method + ".json"
	if IsV2Method(method) {
		target = c.base + method // the form of every imbot.v2 example in the docs
	}
	if token != "" {
		target += "?auth=" + url.QueryEscape(token)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace),
		http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, &TransportError{Method: method, Host: c.host, Err: c.sanitize(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		te := &TransportError{Method: method, Host: c.host, MaybeSent: wrote.Load(), Err: c.sanitize(err)}
		c.logCall(ctx, method, start, 0, te)
		return nil, te
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		te := &TransportError{Method: method, Host: c.host, HTTPStatus: resp.StatusCode, MaybeSent: true, Err: c.sanitize(err)}
		c.logCall(ctx, method, start, resp.StatusCode, te)
		return nil, te
	}
	if len(data) > maxResponseBytes {
		te := &TransportError{Method: method, Host: c.host, HTTPStatus: resp.StatusCode, MaybeSent: true,
			Err: fmt.Errorf("answer larger than %d bytes", maxResponseBytes)}
		c.logCall(ctx, method, start, resp.StatusCode, te)
		return nil, te
	}
	result, err := c.decodeEnvelope(method, resp, data, append(secrets, token))
	var be *Error
	if c.limiter != nil && errors.As(err, &be) && (errors.Is(be, ErrQueryLimitExceeded) || be.HTTPStatus == http.StatusTooManyRequests) {
		c.limiter.Fill() // the portal's bucket is full (v2 answers 429)
	}
	c.logCall(ctx, method, start, resp.StatusCode, err)
	return result, err
}

// decodeEnvelope decides by the envelope, not the status: Bitrix24 sends some errors
// with 200, and a proxy in front of it sends HTML pages with any status.
func (c *Client) decodeEnvelope(method string, resp *http.Response, data []byte, secrets []string) (json.RawMessage, error) {
	var env map[string]json.RawMessage
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &env) != nil {
		ct := resp.Header.Get("Content-Type")
		if ct == "" {
			ct = "no content type"
		}
		return nil, &TransportError{Method: method, Host: c.host, HTTPStatus: resp.StatusCode, MaybeSent: true,
			Err: fmt.Errorf("answer is not a Bitrix24 envelope (%s, %d bytes)", truncate(c.redact.Replace(ct)), len(data))}
	}
	if code := jsonText(env["error"]); code != "" {
		return nil, c.redactError(&Error{
			Method:      method,
			Code:        code,
			Description: jsonText(env["error_description"]),
			HTTPStatus:  resp.StatusCode,
			ResetAt:     operatingResetAt(env["time"]),
		}, secrets...)
	}

	result, ok := env["result"]
	if !ok {
		return nil, &TransportError{Method: method, Host: c.host, HTTPStatus: resp.StatusCode, MaybeSent: true,
			Err: errors.New("answer has neither result nor error")}
	}
	return result, nil
}

// operatingResetAt reads time.operating_reset_at: when a method blocked for using too
// much processing time (OPERATION_TIME_LIMIT) may be called again.
func operatingResetAt(raw json.RawMessage) time.Time {
	var t struct {
		ResetAt json.Number `json:"operating_reset_at"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &t) != nil {
		return time.Time{}
	}
	sec, err := t.ResetAt.Float64()
	if err != nil || sec <= 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(sec*float64(time.Second)))
}

func (c *Client) logCall(ctx context.Context, method string, start time.Time, status int, err error) {
	if c.observer != nil {
		outcome := "ok"
		var be *Error
		switch {
		case errors.As(err, &be):
			outcome = be.Code
		case err != nil:
			outcome = "transport"
		}
		c.observer.ObserveCall(method, outcome, time.Since(start))
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("host", c.host),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
	}
	var be *Error
	var te *TransportError
	switch {
	case errors.As(err, &be):
		attrs = append(attrs, slog.String("code", be.Code))
	case errors.As(err, &te):
		attrs = append(attrs, slog.String("error", te.Error()), slog.Bool("maybe_sent", te.MaybeSent))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "bitrix24 call", attrs...)
}

// redactError takes the webhook secret out of what the portal said: whatever answers
// in its place may echo the request, path and all, and its words reach logs, the
// outbox's last error and doctor's report.
func (c *Client) redactError(e *Error, secrets ...string) *Error {
	e.Code, e.Description = c.redact.Replace(e.Code), c.redact.Replace(e.Description)
	for _, s := range secrets { // an application's access token in the query, a bot's token in the body
		if s != "" {
			e.Code, e.Description = strings.ReplaceAll(e.Code, s, "***"), strings.ReplaceAll(e.Description, s, "***")
		}
	}
	return e
}

// sanitize strips the URL that *url.Error carries (its path holds the webhook secret)
// and redacts the secret from whatever remains, keeping the cause for errors.Is.
func (c *Client) sanitize(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	return &redactedError{msg: c.redact.Replace(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (c *Client) needsClientID(method string) bool {
	if c.clientID == "" {
		return false
	}
	m := strings.ToLower(method)
	return strings.HasPrefix(m, "imbot.") && !strings.HasPrefix(m, "imbot.v2.")
}

// encodeParams marshals params to a JSON object, adding CLIENT_ID where needed.
func (c *Client) encodeParams(method string, params any) ([]byte, error) {
	addID := c.needsClientID(method)
	if m, ok := params.(map[string]any); ok {
		if addID && !hasKeyFold(m, "CLIENT_ID") {
			params = withKey(m, "CLIENT_ID", c.clientID)
		}
		return marshalJSON(params)
	}
	var body []byte
	if params == nil {
		body = []byte("{}")
	} else {
		b, err := marshalJSON(params)
		if err != nil {
			return nil, err
		}
		body = b
	}
	if t := bytes.TrimSpace(body); bytes.Equal(t, []byte("null")) {
		body = []byte("{}")
	} else if len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("bitrix24 %s: params must encode as a JSON object", method)
	}
	if !addID {
		return body, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("bitrix24 %s: params: %w", method, err)
	}
	for k := range obj {
		if strings.EqualFold(k, "CLIENT_ID") {
			return body, nil
		}
	}
	id, _ := json.Marshal(c.clientID)
	obj["CLIENT_ID"] = id
	return marshalJSON(obj)
}

// marshalJSON encodes without HTML escaping: message text full of "<" and "&" stays
// readable in bodies and recordings, and PHP decodes both forms alike.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("bitrix24: encoding params: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := marshalJSON(s) // a string always encodes
	buf.Write(b)
}

// hasKeyFold reports whether m has key, compared as PHP's array_change_key_case does.
func hasKeyFold(m map[string]any, key string) bool {
	for k := range m {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// withKey returns a copy of m with key set, leaving the caller's map untouched.
func withKey(m map[string]any, key string, value any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[key] = value
	return out
}

// jsonText reads a JSON value as text: a string's content, or the raw JSON of
// anything else; "" for null or absent.
func jsonText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// phpArray reads what PHP's json_encode makes of an array: an object for string keys,
// a list when the keys happen to be 0…n-1, and [] when empty.
func phpArray(raw json.RawMessage) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]json.RawMessage{}, nil
	}
	if raw[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		m := make(map[string]json.RawMessage, len(list))
		for i, v := range list {
			m[strconv.Itoa(i)] = v
		}
		return m, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// batchError turns a result_error entry into an *Error. The entry is normally
// {"error":…,"error_description":…}; a bare string is taken as the code.
func batchError(method string, raw json.RawMessage) *Error {
	var e struct {
		Error       json.RawMessage `json:"error"`
		Description json.RawMessage `json:"error_description"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		return &Error{Method: method, Code: jsonText(e.Error), Description: jsonText(e.Description)}
	}
	code := jsonText(raw)
	if code == "" {
		code = "UNKNOWN_ERROR"
	}
	return &Error{Method: method, Code: code}
}
