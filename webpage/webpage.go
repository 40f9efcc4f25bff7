// Package webpage writes the bot's own HTML pages (the sidebar's page, the local
// portal's messenger) the one way: a fresh nonce for their inline script and style,
// and headers that keep them out of caches, unsniffed and without a referrer. Each
// page says its own Content-Security-Policy.
package webpage

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// Nonce is a fresh nonce for a page's inline script and style: in the URL alphabet,
// since templates escape the standard one's "+" and the nonce would then not match.
func Nonce() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Write sends a rendered page with status and the policy csp.
func Write(w http.ResponseWriter, status int, csp string, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}
