package sidebar

import (
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The page's token: what its forms carry so that a follow-up action (Open new, the
// pencil, opening a dialog) is known to come from the page the portal opened, for
// that portal and that user. It is never the portal's AUTH_ID, which would let
// anyone who saw a form act as the user on the portal itself: it is a short-lived
// claim signed with a key only the bot has (derived from the application's client
// secret), checked on every request.
//
//	v1.<claims: base64url JSON>.<HMAC-SHA256 of "v1.<claims>": base64url>

// Claims are what a token says.
type Claims struct {
	Portal int64  `json:"p"`           // the portal's ID in the bot's database
	User   int64  `json:"u"`           // the viewer, as user.current named them
	Name   string `json:"n,omitempty"` // their name, for the dialogs they open
	Admin  bool   `json:"a,omitempty"` // user.admin said yes
	Lang   string `json:"l"`           // the page's language
	Dialog string `json:"d,omitempty"` // the chat whose sidebar the page is in
	// Session is when the portal opened the page (Unix seconds): a token renewed by
	// the page's actions lives no longer than the session.
	Session int64 `json:"s"`
	Expires int64 `json:"e"` // Unix seconds
	// ID is new for every token: the page's Open new is done once per token.
	ID string `json:"i"`
	// Auth is the AUTH_ID the portal opened the page with, sealed (SealAuth): a form
	// brings it back so that the viewer's rights are asked again at the moment of
	// use, while whoever sees the page cannot read it.
	Auth string `json:"t,omitempty"`
}

// Errors of Verify; both wrap ErrToken.
var (
	ErrToken        = errors.New("sidebar: the page's token is refused")
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrToken)
	errTokenInvalid = fmt.Errorf("%w: not one the bot signed", ErrToken)
)

// Lifetimes of tokens.
const (
	// DefaultTTL is how long a token is good for: each action's answer brings a new one.
	DefaultTTL = 15 * time.Minute
	// DefaultSession is the longest a page opened once may keep acting: the life of
	// the AUTH_ID it was opened with.
	DefaultSession = time.Hour
	// maxToken is longer than any token the bot signs.
	maxToken = 2048
)

const tokenVersion = "v1"

// b64 is strict: a signature differing in its unused bits is another signature,
// refused, not the same one read leniently.
var b64 = base64.RawURLEncoding.Strict()

// Signer signs and checks tokens with one key.
type Signer struct {
	key     []byte
	seal    cipher.AEAD
	Now     func() time.Time // nil: time.Now
	TTL     time.Duration    // 0: DefaultTTL
	Session time.Duration    // 0: DefaultSession
}

// NewSigner derives the signing key from the application's client secret: the same
// secret always gives the same key, so tokens outlive a restart; a new secret
// invalidates them all.
func NewSigner(clientSecret string) *Signer {
	mac := hmac.New(sha256.New, []byte(clientSecret))
	mac.Write([]byte("supportbot sidebar page token " + tokenVersion))
	sealing := hmac.New(sha256.New, []byte(clientSecret))
	sealing.Write([]byte("supportbot sidebar sealed AUTH_ID " + tokenVersion))
	block, _ := aes.NewCipher(sealing.Sum(nil)) // a 32-byte key: never fails
	aead, _ := cipher.NewGCM(block)
	return &Signer{key: mac.Sum(nil), seal: aead}
}

// SealAuth encrypts an AUTH_ID for Claims.Auth.
func (s *Signer) SealAuth(authID string) (string, error) {
	if s.seal == nil {
		return "", errors.New("sidebar: a Signer not made by NewSigner cannot seal")
	}
	nonce := make([]byte, s.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return b64.EncodeToString(s.seal.Seal(nonce, nonce, []byte(authID), nil)), nil
}

// OpenAuth decrypts Claims.Auth; ErrToken if it is not one SealAuth made.
func (s *Signer) OpenAuth(sealed string) (string, error) {
	raw, err := b64.DecodeString(sealed)
	if err != nil || s.seal == nil || len(raw) < s.seal.NonceSize() {
		return "", errTokenInvalid
	}
	plain, err := s.seal.Open(nil, raw[:s.seal.NonceSize()], raw[s.seal.NonceSize():], nil)
	if err != nil {
		return "", errTokenInvalid
	}
	return string(plain), nil
}

func (s *Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Issue signs c as a new token: a fresh ID, and an expiry TTL from now but not past
// the session's end. A zero Session starts one now.
func (s *Signer) Issue(c Claims) (string, error) {
	now := s.now()
	if c.Session == 0 {
		c.Session = now.Unix()
	}
	end := time.Unix(c.Session, 0).Add(cmp.Or(s.Session, DefaultSession)).Unix()
	c.Expires = min(now.Add(cmp.Or(s.TTL, DefaultTTL)).Unix(), end)
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	c.ID = hex.EncodeToString(id)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := tokenVersion + "." + b64.EncodeToString(payload)
	token := signed + "." + b64.EncodeToString(s.mac(signed))
	if len(token) > maxToken {
		return "", fmt.Errorf("sidebar: a token of %d bytes: its claims are too long", len(token))
	}
	return token, nil
}

func (s *Signer) mac(signed string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Verify checks a token and returns its claims: ErrTokenExpired for one of ours that
// has expired (its claims are returned, for the refusal's words and frame, and must
// authorise nothing), another ErrToken for anything else. The signature is compared
// in constant time, before anything in the token is read.
func (s *Signer) Verify(token string) (Claims, error) {
	if len(token) > maxToken {
		return Claims{}, errTokenInvalid
	}
	version, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || version != tokenVersion {
		return Claims{}, errTokenInvalid
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(version+"."+payload)) {
		return Claims{}, errTokenInvalid
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return Claims{}, errTokenInvalid
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil || c.Portal <= 0 || c.User <= 0 || c.ID == "" {
		return Claims{}, errTokenInvalid
	}
	now := s.now()
	if now.Unix() >= c.Expires || c.Session > now.Add(time.Minute).Unix() ||
		time.Unix(c.Expires, 0).After(time.Unix(c.Session, 0).Add(cmp.Or(s.Session, DefaultSession))) {
		return c, ErrTokenExpired
	}
	return c, nil
}
