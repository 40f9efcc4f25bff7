package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// TokenSet is what Bitrix24's OAuth server answers to a refresh.
type TokenSet struct {
	AccessToken    string
	RefreshToken   string
	ExpiresAt      time.Time
	MemberID       string
	Domain         string // the OAuth server's own domain (oauth.bitrix.info), not the portal's
	ClientEndpoint string // the portal's REST endpoint: its host is the portal's domain
	ServerEndpoint string
	UserID         int64
}

// TokenSource gives an application's access token for one portal and renews it.
type TokenSource interface {
	// Token is the current access token.
	Token(ctx context.Context) (string, error)
	// Refresh renews the access token after the portal said stale expired. Callers
	// that saw the same stale token get the one new token: one refresh at a time.
	Refresh(ctx context.Context, stale string) (string, error)
}

// WithTokens makes the client an application's: it calls base (the portal's
// client_endpoint, "https://PORTAL/rest/") with the access token, and refreshes the
// token once when the portal answers expired_token.
func WithTokens(ts TokenSource) Option { return func(c *Client) { c.tokens = ts } }

// StaticToken is a TokenSource of one access token that is never renewed: a user's,
// taken from an event, which the application cannot refresh.
type StaticToken string

// Token implements TokenSource.
func (s StaticToken) Token(context.Context) (string, error) { return string(s), nil }

// Refresh implements TokenSource: the token cannot be renewed.
func (s StaticToken) Refresh(context.Context, string) (string, error) {
	return "", errors.New("the user's access token has expired")
}

// OAuthTokens is a TokenSource for one portal: it refreshes at Bitrix24's OAuth
// server and hands every new pair to save before using it, since the old refresh
// token stops working the moment the new one is issued.
type OAuthTokens struct {
	clientID, clientSecret, tokenURL string
	http                             *http.Client
	save                             func(context.Context, TokenSet) error

	onSaveError func(error)
	load        func(context.Context) (TokenSet, error)

	mu      sync.Mutex
	cur     TokenSet
	unsaved bool // cur is not stored yet
}

// NewOAuthTokens returns the token source of one portal. oauthURL is the OAuth server
// ("https://oauth.bitrix.info/"); save must store the new tokens durably.
func NewOAuthTokens(clientID, clientSecret, oauthURL string, cur TokenSet, hc *http.Client, save func(context.Context, TokenSet) error) *OAuthTokens {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &OAuthTokens{clientID: clientID, clientSecret: clientSecret, tokenURL: TokenURL(oauthURL), http: hc, save: save, cur: cur}
}

// TokenURL is the OAuth server's token endpoint.
func TokenURL(oauthURL string) string { return strings.TrimRight(oauthURL, "/") + "/oauth/token/" }

// Token implements TokenSource. A pair whose save failed is saved again first.
func (o *OAuthTokens) Token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.unsaved {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		_ = o.saveLocked(sctx)
		cancel()
	}
	return o.cur.AccessToken, nil
}

// LoadWith sets where the stored pair is read from. With replicas, whichever holds
// the portal refreshes and stores its tokens; a replica that held it before must not
// refresh with the refresh token that has been spent since (invalid_grant for ever):
// before it refreshes, after an invalid_grant and when it takes the portal over, it
// takes the stored pair if that is another than its own.
func (o *OAuthTokens) LoadWith(load func(context.Context) (TokenSet, error)) { o.load = load }

// Reload takes the stored pair if it differs from the one in memory (see LoadWith).
func (o *OAuthTokens) Reload(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.adoptStoredLocked(ctx)
	return err
}

// adoptStoredLocked takes the stored pair when it is another than ours, and reports
// whether it did. A pair of ours that is not stored yet is newer than the stored one.
func (o *OAuthTokens) adoptStoredLocked(ctx context.Context) (bool, error) {
	if o.load == nil || o.unsaved {
		return false, nil
	}
	ts, err := o.load(ctx)
	if err != nil || ts.RefreshToken == "" || ts.RefreshToken == o.cur.RefreshToken {
		return false, err
	}
	o.cur = ts
	return true, nil
}

// OnSaveError sets what to do when storing a renewed pair fails (log it): the pair
// is kept in memory and saved again on the next call.
func (o *OAuthTokens) OnSaveError(f func(error)) { o.onSaveError = f }

// Refresh implements TokenSource. Holding the lock through the request is the point:
// twenty calls that met expired_token together wait for one refresh and all use its
// token; a second refresh would spend the refresh token the first one just rotated.
//
// The refresh and the save run on their own deadline, not the caller's: once the
// OAuth server has rotated the refresh token, losing its answer or not storing it
// would leave the portal with a spent one.
func (o *OAuthTokens) Refresh(ctx context.Context, stale string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur.AccessToken != stale {
		return o.cur.AccessToken, nil // refreshed meanwhile by another caller
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	// Another replica may have refreshed since we read the pair: its access token
	// is the live one, and our refresh token is spent.
	if adopted, _ := o.adoptStoredLocked(rctx); adopted && o.cur.AccessToken != stale {
		return o.cur.AccessToken, nil
	}
	ts, err := RefreshToken(rctx, o.http, o.tokenURL, o.clientID, o.clientSecret, o.cur.RefreshToken)
	var oe *Error
	if errors.As(err, &oe) && oe.Code == "invalid_grant" {
		// Spent between our read and our refresh: once more with the stored pair.
		if adopted, _ := o.adoptStoredLocked(rctx); adopted {
			if o.cur.AccessToken != stale {
				return o.cur.AccessToken, nil
			}
			ts, err = RefreshToken(rctx, o.http, o.tokenURL, o.clientID, o.clientSecret, o.cur.RefreshToken)
		}
	}
	if err != nil {
		return "", err
	}
	o.cur = ts
	o.unsaved = true
	// A failed save keeps the new pair, which works, in memory; it is saved again on
	// the next call until that succeeds.
	_ = o.saveLocked(rctx)
	return ts.AccessToken, nil
}

// refreshTimeout bounds one renewal and the save of its answer.
const refreshTimeout = 30 * time.Second

// saveLocked stores the current pair if it is not stored yet.
func (o *OAuthTokens) saveLocked(ctx context.Context) error {
	if !o.unsaved || o.save == nil {
		o.unsaved = false
		return nil
	}
	if err := o.save(ctx, o.cur); err != nil {
		if o.onSaveError != nil {
			o.onSaveError(err)
		}
		return err
	}
	o.unsaved = false
	return nil
}

// RefreshToken exchanges a refresh token for a new token pair at the OAuth server.
// The answer comes from Bitrix24 itself, so what it says about the portal (member_id,
// client_endpoint) can be trusted, unlike what an event claims.
func RefreshToken(ctx context.Context, hc *http.Client, tokenURL, clientID, clientSecret, refreshToken string) (TokenSet, error) {
	q := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {clientID},
		"client_secret": {clientSecret},
		"refresh_token": {refreshToken},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tokenURL+"?"+q.Encode(), nil)
	if err != nil {
		return TokenSet{}, errors.New("bitrix24 oauth: invalid OAuth server URL")
	}
	host := req.URL.Host
	resp, err := hc.Do(req)
	if err != nil {
		// The URL carries the client secret and the refresh token: report neither.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return TokenSet{}, &TransportError{Method: "oauth/token", Host: host, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return TokenSet{}, &TransportError{Method: "oauth/token", Host: host, HTTPStatus: resp.StatusCode, MaybeSent: true, Err: err}
	}
	var ans struct {
		Error            string      `json:"error"`
		ErrorDescription string      `json:"error_description"`
		AccessToken      string      `json:"access_token"`
		RefreshToken     string      `json:"refresh_token"`
		Expires          json.Number `json:"expires"`
		ExpiresIn        json.Number `json:"expires_in"`
		MemberID         string      `json:"member_id"`
		Domain           string      `json:"domain"`
		ClientEndpoint   string      `json:"client_endpoint"`
		ServerEndpoint   string      `json:"server_endpoint"`
		UserID           json.Number `json:"user_id"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return TokenSet{}, &TransportError{Method: "oauth/token", Host: host, HTTPStatus: resp.StatusCode, MaybeSent: true,
			Err: errors.New("answer is not OAuth JSON")}
	}
	if ans.Error != "" {
		// The request carried the application's secret and the refresh token: an
		// answer that echoes them must not pass them on.
		secrets := strings.NewReplacer(clientSecret, "***", refreshToken, "***")
		return TokenSet{}, &Error{Method: "oauth/token", Code: secrets.Replace(ans.Error),
			Description: secrets.Replace(ans.ErrorDescription), HTTPStatus: resp.StatusCode}
	}
	if ans.AccessToken == "" || ans.RefreshToken == "" {
		return TokenSet{}, &Error{Method: "oauth/token", Code: "invalid_grant", Description: "no tokens in the answer", HTTPStatus: resp.StatusCode}
	}
	ts := TokenSet{
		AccessToken: ans.AccessToken, RefreshToken: ans.RefreshToken, MemberID: ans.MemberID, Domain: ans.Domain,
		ClientEndpoint: ans.ClientEndpoint, ServerEndpoint: ans.ServerEndpoint,
	}
	ts.UserID, _ = ans.UserID.Int64()
	if exp, err := ans.Expires.Int64(); err == nil && exp > 0 {
		ts.ExpiresAt = time.Unix(exp, 0)
	} else if in, err := ans.ExpiresIn.Int64(); err == nil && in > 0 {
		ts.ExpiresAt = time.Now().Add(time.Duration(in) * time.Second)
	}
	return ts, nil
}
