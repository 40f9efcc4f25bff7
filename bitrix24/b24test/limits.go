package b24test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"
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
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 { // from the zero time: empty
		b.level = max(0, b.level-elapsed*b.rate)
	}
	b.last = now
	if b.level+1 > b.burst+bucketEpsilon {
		return false
	}
	b.level++
	return true
}

// SetRateLimit sets the portal's leaky bucket, empty: it drains perSecond requests a
// second and holds burst (at least 1); perSecond <= 0 turns the limit off. Every
// portal starts with the cloud limits, 2 a second and 50 deep. Every HTTP request with
// good credentials counts once, a batch too; those answered 401 do not. A request
// that does not fit is answered 503 QUERY_LIMIT_EXCEEDED and not run or recorded.
func (p *Portal) SetRateLimit(perSecond float64, burst int) {
	defer p.lock()()
	p.bucket = bucket{rate: perSecond, burst: float64(max(burst, 1))}
}

// SetClock sets the clock the portal's limits read: the leaky bucket drains by it and
// BlockMethod's blocks end by it. Every portal starts on time.Now; a test that steps
// its own clock asserts the limits exactly, however slow the machine. now must not go
// backwards, and must be safe to call from the portal's handlers while the test
// steps it.
func (p *Portal) SetClock(now func() time.Time) {
	defer p.lock()()
	p.now = now
}

// LimitRejections is how many requests the leaky bucket refused with
// QUERY_LIMIT_EXCEEDED. Injected FaultQueryLimit answers are not counted here.
func (p *Portal) LimitRejections() int {
	defer p.lock()()
	return p.rejections
}

// Requests is how many HTTP requests reached the portal's REST handler with the
// right credentials, whether they ran or were refused (by the bucket or an injected
// fault); a batch counts once.
func (p *Portal) Requests() int {
	defer p.lock()()
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
	rng *rand.Rand
}

// InjectFaults fails a share of the requests from now on, replacing any previous
// plan; a Share of 0 stops it. Requests the leaky bucket refuses are not eligible;
// the others each draw from the plan's seeded generator in arrival order (a batch is
// one request), so the same seed and the same sequence of requests give the same
// faults. A faulted request has used its place in the bucket. FaultCounts keeps
// counting across plans.
func (p *Portal) InjectFaults(plan FaultPlan) {
	f := &faults{FaultPlan: plan, rng: rand.New(rand.NewPCG(plan.Seed, 0x5eed_b24))}
	f.Share = min(max(plan.Share, 0), 1)
	f.Kinds = slices.Clone(plan.Kinds)
	if len(f.Kinds) == 0 {
		for k := range numFaults {
			f.Kinds = append(f.Kinds, Fault(k))
		}
	}
	if f.SlowDelay <= 0 {
		f.SlowDelay = 3 * time.Second
	}
	defer p.lock()()
	p.faults = f
	if f.Share == 0 {
		p.faults = nil
	}
}

// FaultCounts is how many faults of each kind were injected so far.
func (p *Portal) FaultCounts() map[Fault]int {
	defer p.lock()()
	return maps.Clone(p.faultCounts)
}

// admit counts a request that passed authentication, puts it through the leaky
// bucket, and draws its fault. ok is false when the bucket refuses it.
func (p *Portal) admit(method string) (fault Fault, slow time.Duration, ok bool) {
	defer p.lock()()
	p.requests++
	if !p.bucket.allow(p.now()) {
		p.rejections++
		return noFault, 0, false
	}
	f := p.faults
	eligible := func(m string) bool { return strings.EqualFold(m, method) }
	if f == nil || len(f.Methods) > 0 && !slices.ContainsFunc(f.Methods, eligible) || f.rng.Float64() >= f.Share {
		return noFault, 0, true
	}
	fault = f.Kinds[f.rng.IntN(len(f.Kinds))]
	p.faultCounts[fault]++
	return fault, f.SlowDelay, true
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
		writeError(w, errQueryLimit)
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
		select {
		case <-time.After(slow):
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
// HTTP 429 and a "time" block whose operating_reset_at is until (Unix seconds); a
// batch command gets the error in result_error (the batch itself is not blocked). The
// call is recorded but does not run, whatever Handle or HandleHTTP say. A zero or
// past until lifts the block.
func (p *Portal) BlockMethod(method string, until time.Time) {
	defer p.lock()()
	setOrDelete(p.blocked, method, until, until.IsZero())
}

// blockedUntil reports whether method is blocked now, and until when.
func (p *Portal) blockedUntil(method string) (time.Time, bool) {
	defer p.lock()()
	until, ok := p.blocked[strings.ToLower(method)]
	return until, ok && p.now().Before(until)
}

// writeBlocked answers a direct call to a blocked method.
func writeBlocked(w http.ResponseWriter, start, until time.Time) {
	e := errOperationTimeLimit
	writeJSON(w, e.HTTPStatus, phpArray{"error", e.Code, "error_description", e.Description, "time", timing(start, until)})
}
