package sidebar

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock is a Signer's Now that the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestTokenRoundTrip(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := NewSigner("the application's client secret")
	s.Now = c.now
	want := Claims{Portal: 3, User: 27, Name: "Анна", Admin: true, Lang: "ru", Dialog: "chat1001"}
	tok, err := s.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID == "" || got.Session != c.t.Unix() || got.Expires != c.t.Add(DefaultTTL).Unix() {
		t.Fatalf("claims %+v", got)
	}
	want.ID, want.Session, want.Expires = got.ID, got.Session, got.Expires
	if got != want {
		t.Fatalf("claims %+v, want %+v", got, want)
	}
	if again, _ := s.Issue(want); again == tok {
		t.Error("two tokens alike: each needs its own ID")
	}
	if strings.Contains(tok, "Анна") || len(tok) > 400 {
		t.Errorf("token %q", tok)
	}

	// Renewed by the page's actions, a token never outlives the session.
	c.t = c.t.Add(DefaultSession - 5*time.Minute)
	renewed, _ := s.Issue(got)
	r, err := s.Verify(renewed)
	if err != nil || r.Expires != got.Session+int64(DefaultSession/time.Second) {
		t.Fatalf("renewed near the session's end: %+v %v", r, err)
	}
	c.t = c.t.Add(5 * time.Minute)
	if _, err := s.Verify(renewed); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("at the session's end: %v", err)
	}
	c.t = time.Unix(1_800_000_000, 0).Add(DefaultTTL)
	if _, err := s.Verify(tok); !errors.Is(err, ErrTokenExpired) || !errors.Is(err, ErrToken) {
		t.Fatalf("after its TTL: %v", err)
	}
}

// TestTokenRefusals: anything but a token this key signed, unchanged, is refused.
func TestTokenRefusals(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := NewSigner("secret")
	s.Now = c.now
	tok, _ := s.Issue(Claims{Portal: 3, User: 27, Lang: "ru"})
	other := NewSigner("another application's secret")
	other.Now = c.now
	foreign, _ := other.Issue(Claims{Portal: 3, User: 27, Lang: "ru"})
	version, rest, _ := strings.Cut(tok, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := strings.Replace(string(raw), `"u":27`, `"u":28`, 1)
	cases := map[string]string{
		"empty":                 "",
		"another key":           foreign,
		"the user changed":      version + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + sig,
		"no signature":          version + "." + payload + ".",
		"another version":       "v2." + payload + "." + sig,
		"signature cut short":   tok[:len(tok)-2],
		"garbage":               "v1.%%%.%%%",
		"too long":              tok + strings.Repeat("A", maxToken),
		"the AUTH_ID as token":  "6061e72600631fcd00005a4b00000001f0f1076700000000f69dd5fc643d9ce2fdbc1",
		"a signed empty claims": signRaw(s, "{}"),
		"a signed non-object":   signRaw(s, "[1]"),
	}
	for i := range len(tok) {
		flipped := []byte(tok)
		flipped[i] ^= 1
		cases["byte "+string(rune('0'+i%10))+" flipped at "+strings.Repeat("·", i/10)] = string(flipped)
	}
	for name, bad := range cases {
		if got, err := s.Verify(bad); err == nil || !errors.Is(err, ErrToken) || errors.Is(err, ErrTokenExpired) {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	// Issued in the future (a clock ahead, a forged session): refused.
	c.t = c.t.Add(-time.Hour)
	if _, err := s.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("a token from the future: %v", err)
	}
}

// signRaw signs any payload with s's key, as a bug that signed bad claims would.
func signRaw(s *Signer, payload string) string {
	signed := tokenVersion + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.mac(signed))
}

func FuzzVerify(f *testing.F) {
	s := NewSigner("secret")
	tok, _ := s.Issue(Claims{Portal: 1, User: 2, Lang: "en"})
	f.Add(tok)
	f.Add("v1..")
	f.Add(signRaw(s, `{"p":1,"u":2,"i":"x","e":99999999999,"s":0}`))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token)
		if err == nil && (c.Portal <= 0 || c.User <= 0 || c.ID == "") {
			t.Fatalf("accepted %+v", c)
		}
		if err != nil && !errors.Is(err, ErrToken) {
			t.Fatalf("error %v does not wrap ErrToken", err)
		}
	})
}

func TestParseAction(t *testing.T) {
	a, err := ParseAction([]byte("token=v1.a.b&number=3&title=%3Cb%3E+x&question=&base=sidebar%2F&js=1&extra=ignored"))
	if err != nil || a != (Action{Token: "v1.a.b", Number: 3, Title: "<b> x", Base: "sidebar/", Script: true}) {
		t.Fatalf("%+v %v", a, err)
	}
	for _, bad := range []string{
		"token=a&token=b", "number=0", "number=-1", "number=x", "number=99999999999999", "base=..%2F", "title=%ff",
		"%zz", "question=" + strings.Repeat("x", MaxQuestion+1), "token=" + strings.Repeat("x", maxToken+1),
	} {
		if a, err := ParseAction([]byte(bad)); !errors.Is(err, ErrMalformedAction) {
			t.Errorf("%.40s: %+v %v", bad, a, err)
		}
	}
	if a, err := ParseAction(nil); err != nil || a != (Action{}) {
		t.Errorf("empty: %+v %v", a, err)
	}
}

func FuzzParseAction(f *testing.F) {
	f.Add([]byte("token=v1.a.b&number=3&title=x&question=q&base=sidebar%2F&js=1"))
	f.Add([]byte("number=1&number=2"))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAction(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedAction) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if a.Number < 0 || a.Number > maxNumber || (a.Base != "" && a.Base != pageBase) || len(a.Token) > maxToken {
			t.Fatalf("accepted %+v", a)
		}
	})
}
