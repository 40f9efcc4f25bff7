package handlers

import "crypto/subtle"

// tokenMatches compares an event's application token with the expected one in
// constant time, so response timing tells an attacker nothing about the token. An
// empty expected token matches nothing.
func tokenMatches(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
