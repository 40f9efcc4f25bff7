package webpage

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNonceAndHeaders: nonces are fresh and in the URL alphabet (a "+" would be
// escaped by templates and the nonce would no longer match), and a page goes out with
// its policy and the headers every page has.
func TestNonceAndHeaders(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		n, err := Nonce()
		if err != nil {
			t.Fatal(err)
		}
		if seen[n] || len(n) != 24 || strings.ContainsAny(n, "+/=") {
			t.Fatalf("nonce %q (seen before: %v)", n, seen[n])
		}
		seen[n] = true
	}
	rec := httptest.NewRecorder()
	if err := Write(rec, http.StatusTeapot, "default-src 'none'", []byte("<p>hi</p>")); err != nil {
		t.Fatal(err)
	}
	h := rec.Header()
	if rec.Code != http.StatusTeapot || rec.Body.String() != "<p>hi</p>" || h.Get("Content-Security-Policy") != "default-src 'none'" ||
		h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Referrer-Policy") != "no-referrer" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %q %v", rec.Code, rec.Body.String(), h)
	}
}
