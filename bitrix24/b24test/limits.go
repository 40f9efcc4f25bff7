package b24test

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"supportbot/bitrix24"
)

// The cloud limits every portal starts with (Bitrix24's REST limits page,
// b24restdocs limits.md): the bucket drains 2 requests a second and holds 50.
const (
	defaultRate  = 2
	defaultBurst = 50
)

// bucketEpsilon absorbs floating-point error, so that a client pacing itself at
// exactly the rate after a full burst is never refused.
const bucketEpsilon = 1e-9

// bucket is Bitrix24's leaky bucket: each request adds 1, the level drains
// continuously at rate per second, and a request that would take it over burst is
// refused (and adds nothing). It is exact: the level is fractional.
type bucket struct {
	rate  float64 // per second; <= 0: no limit
	burst float64
	level float64
	last  time.Time // when level was last brought up to date; monotonic
}

// allow drains the bucket up to now and takes one request if it fits. now must not
// go backwards between calls (the portal reads the clock under its lock).
func (b *bucket) allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
			b.level = max(0, b.level-elapsed*b.rate)
		}
	}
	b.last = now
	if b.level+1 > b.burst+bucketEpsilon {
		return false
	}
	b.level++
	return true
}

// SetRateLimit sets the portal's leaky bucket: it drains perSecond requests a second
// and holds burst (at least 1). perSecond <= 0 turns the limit off. The bucket
// starts empty. Every portal starts with the cloud limits, 2 a second and 50 deep.
//
// Every HTTP request with good credentials — the webhook's or an application's token
// — counts once, a batch too, whatever it holds; requests with wrong, missing or
// expired credentials (401) do not. A request that does not fit is answered 503
// QUERY_LIMIT_EXCEEDED and not run: it is not in Calls and changes nothing.
func (p *Portal) SetRateLimit(perSecond float64, burst int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bucket = bucket{rate: perSecond, burst: float64(max(burst, 1))}
}

// LimitRejections is how many requests the leaky bucket refused with
// QUERY_LIMIT_EXCEEDED. Injected FaultQueryLimit answers are not counted here.
func (p *Portal) LimitRejections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejections
}

// Requests is how many HTTP requests reached the portal's REST handler with the
// right credentials, whether they ran or were refused (by the bucket or an injected
// fault); a batch counts once.
func (p *Portal) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Fault is a failure InjectFaults gives a request.
type Fault int

const (
	// FaultServerError: HTTP 500 with an HTML page; the call does not run.
	FaultServerError Fault = iota
	// FaultQueryLimit: HTTP 503 with the QUERY_LIMIT_EXCEEDED envelope; the call does
	// not run. Not counted in LimitRejections.
	FaultQueryLimit
	// FaultSlow: the call runs, then its answer is held for FaultPlan.SlowDelay: a
	// client that gives up sooner does not learn that it ran.
	FaultSlow
	// FaultHTML: HTTP 502 with an nginx error page; the call does not run.
	FaultHTML
	// FaultDropBefore: the connection is closed without an answer; the call does not run.
	FaultDropBefore
	// FaultDropAfter: the call runs, then the connection is closed without an answer.
	FaultDropAfter

	numFaults int   = iota
	noFault   Fault = -1
)

var faultNames = [numFaults]string{"FaultServerError", "FaultQueryLimit", "FaultSlow", "FaultHTML", "FaultDropBefore", "FaultDropAfter"}

func (f Fault) String() string {
	if f < 0 || int(f) >= numFaults {
		return fmt.Sprintf("Fault(%d)", int(f))
	}
	return faultNames[f]
}

// FaultPlan says which requests InjectFaults fails and how.
type FaultPlan struct {
	Share     float64       // 0..1: the share of (eligible) requests that get a fault
	Kinds     []Fault       // picked uniformly for each faulted request; empty: all kinds
	Seed      uint64        // the same seed and the same requests give the same faults
	SlowDelay time.Duration // how long FaultSlow holds an answer; 0: 3 s
	Methods   []string      // if set, only requests for these methods ("batch" for a batch) are eligible
}

// faults is the running plan.
type faults struct {
	FaultPlan
	methods map[string]bool // lower case; nil: every method
	rng     *rand.Rand
}

// InjectFaults fails a share of the requests from now on, replacing any previous
// plan; a Share of 0 stops it. Requests the leaky bucket refuses are not eligible;
// the others each draw from the plan's seeded generator in arrival order (a batch is
// one request), so the same seed and the same sequence of requests give the same
// faults. A faulted request has used its place in the bucket. FaultCounts keeps
// counting across plans. It panics on a Kind that is not a Fault.
func (p *Portal) InjectFaults(plan FaultPlan) {
	f := &faults{FaultPlan: plan, rng: rand.New(rand.NewPCG(plan.Seed, 0x5eed_b24))}
	f.Share = min(max(plan.Share, 0), 1)
	f.Kinds = append([]Fault(nil), plan.Kinds...)
	for _, k := range f.Kinds {
		if k < 0 || int(k) >= numFaults {
			panic(fmt.Sprintf("b24test: InjectFaults: unknown fault %v", k))
		}
	}
	if len(f.Kinds) == 0 {
		for k := range numFaults {
			f.Kinds = append(f.Kinds, Fault(k))
		}
	}
	if f.SlowDelay <= 0 {
		f.SlowDelay = 3 * time.Second
	}
	if len(plan.Methods) > 0 {
		f.methods = map[string]bool{}
		for _, m := range plan.Methods {
			f.methods[strings.ToLower(m)] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
	if f.Share == 0 {
		p.faults = nil
	}
}

// FaultCounts is how many faults of each kind were injected so far.
func (p *Portal) FaultCounts() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.faultCounts)
}

// admit counts a request that passed authentication, puts it through the leaky
// bucket, and draws its fault. ok is false when the bucket refuses it.
func (p *Portal) admit(method string) (fault Fault, slow time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if !p.bucket.allow(time.Now()) {
		p.rejections++
		return noFault, 0, false
	}
	f := p.faults
	if f == nil || (f.methods != nil && !f.methods[strings.ToLower(method)]) || f.rng.Float64() >= f.Share {
		return noFault, 0, true
	}
	fault = f.Kinds[f.rng.IntN(len(f.Kinds))]
	p.faultCounts[fault]++
	return fault, f.SlowDelay, true
}

func errQueryLimit() *bitrix24.Error {
	return &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests", HTTPStatus: http.StatusServiceUnavailable}
}

// nginxPage is the page the web server in front of PHP sends when PHP fails or is
// out of reach.
func nginxPage(status string) string {
	return "<html>\r\n<head><title>" + status + "</title></head>\r\n<body>\r\n" +
		"<center><h1>" + status + "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
}

func writeHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Server", "nginx")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, page)
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the response, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// serveFaulted answers a request that drew a fault.
func (p *Portal) serveFaulted(w http.ResponseWriter, req *request, fault Fault, slow time.Duration) {
	switch fault {
	case FaultServerError:
		writeHTML(w, http.StatusInternalServerError, nginxPage("500 Internal Server Error"))
	case FaultQueryLimit:
		writeError(w, errQueryLimit())
	case FaultHTML:
		writeHTML(w, http.StatusBadGateway, nginxPage("502 Bad Gateway"))
	case FaultDropBefore:
		drop(w)
	case FaultDropAfter:
		p.execute(httptest.NewRecorder(), req)
		drop(w)
	case FaultSlow:
		rec := httptest.NewRecorder()
		p.execute(rec, req)
		timer := time.NewTimer(slow)
		defer timer.Stop()
		select {
		case <-timer.C:
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		case <-req.r.Context().Done(): // the client gave up
		case <-p.done: // the test is over: let the server close
			drop(w)
		}
	}
}

// BlockMethod makes method answer OPERATION_TIME_LIMIT until the given time, as
// Bitrix24 does for a method that used up its processing time: a direct call gets
// HTTP 429 with the error envelope and a "time" block whose operating_reset_at is
// until (Unix seconds); a batch command gets the error in result_error, and the
// batch's own "time" block stays as usual (the batch call itself is never blocked
// for its commands). The call is recorded in Calls but does not run, whatever Handle
// or HandleHTTP say for it. A zero or past until lifts the block.
func (p *Portal) BlockMethod(method string, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	setOrDelete(p.blocked, method, until, until.IsZero())
}

// blockedUntil reports whether method is blocked now, and until when.
func (p *Portal) blockedUntil(method string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.blocked[strings.ToLower(method)]
	return until, ok && time.Now().Before(until)
}

func errOperationTimeLimit() *bitrix24.Error {
	return &bitrix24.Error{Code: "OPERATION_TIME_LIMIT", Description: "Method is blocked due to operation time limit.",
		HTTPStatus: http.StatusTooManyRequests}
}

// writeBlocked answers a direct call to a blocked method.
func writeBlocked(w http.ResponseWriter, start, until time.Time) {
	e := errOperationTimeLimit()
	env := &phpArray{}
	env.set("error", e.Code)
	env.set("error_description", e.Description)
	env.set("time", timing(start, until))
	writeJSON(w, e.HTTPStatus, env)
}
