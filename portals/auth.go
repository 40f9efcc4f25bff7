package portals

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Origin is what authenticating an event established: the portal it comes from and,
// in app mode, who wrote it and whether they administer that portal.
type Origin struct {
	PortalID int64
	// Author is the event's author as the portal confirmed it, before the event's
	// transaction (app mode: the owner of the event's access token); 0 where the
	// event's own word is taken (webhook mode, where only Bitrix24 holds the token).
	Author int64
	// Admin is the author when the portal confirmed, with the author's own token, that
	// they administer it (user.admin); 0 otherwise. The rules then treat them as a
	// client without a configured list.
	Admin int64
}

// ErrUnverified: an event that may be genuine but whose claim the portal cannot
// confirm now (it did not answer in time, it is down, or the share of its limit left
// for checks is spent). Such an event is kept and checked again later; it is never
// processed as if its author were a stranger, nor refused.
var ErrUnverified = errors.New("the portal cannot confirm the event now")

// An Authenticator says which portal an event comes from and whether it is genuine:
// bitrix24.ErrNotGenuine when it is not, another error when it cannot tell now. It
// runs before the event's transaction, so it may ask the network (bounded in time).
type Authenticator interface {
	Authenticate(ctx context.Context, ev bitrix24.Event) (Origin, error)
}

// tokenMatches compares a token an event or page carries with the one expected, in
// constant time, so response timing tells an attacker nothing about it. An empty
// expected token matches nothing. Every token check goes through here.
func tokenMatches(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Webhook authenticates events in webhook mode: one portal, one configured
// application token. Only the top-level auth[application_token] counts, never the
// copy under data[BOT], which any bot's event carries.
type Webhook struct {
	PortalID int64
	Token    string
	// Open accepts events without a token check: dry-run with no token configured,
	// for trying the bot on a machine with no portal.
	Open bool
	// Refusals, if set, remembers that events were refused for their token.
	Refusals *Refusals
}

// Authenticate implements Authenticator.
func (w Webhook) Authenticate(ctx context.Context, ev bitrix24.Event) (Origin, error) {
	if w.Open || tokenMatches(ev.Head().Auth.ApplicationToken, w.Token) {
		return Origin{PortalID: w.PortalID}, nil
	}
	if w.Token != "" {
		w.Refusals.note(ctx, w.PortalID)
	}
	return Origin{}, fmt.Errorf("application token does not match: %w", bitrix24.ErrNotGenuine)
}

// Refusals remembers, for doctor, that events posted with a token other than the
// configured one were refused: after `register --rotate-token` in imbot.v2 webhook
// mode the portal signs its events with a new token, and the administrator must be
// told. At most once a minute, so a flood of forged events costs a write a minute.
type Refusals struct {
	Store *storage.Store

	mu   sync.Mutex
	last time.Time
}

func (r *Refusals) note(ctx context.Context, portalID int64) {
	if r == nil || r.Store == nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.last) < time.Minute {
		r.mu.Unlock()
		return
	}
	r.last = now
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = r.Store.NoteEventsRefused(ctx, portalID, now) // a hint for doctor: the refusal stands either way
}

// App authenticates events in app mode. The application token an event carries
// proves only "someone on this portal": every user who opens the sidebar reads it
// (widgets/_includes/widget_data.md). So an installation is verified with Bitrix24's
// OAuth server, the application's removal (and its bot's) with the portal, and a
// posted bot event proves its author with the user access token Bitrix24 issued to
// this application for them (auth[access_token]): the portal, asked on its stored
// endpoint, must say the token is this application's (app.info) and its user's
// (user.current), and says whether that user administers it (user.admin). A
// portal whose events are fetched takes no posted bot event at all.
type App struct {
	Store       *storage.Store
	OAuth       OAuthApp
	Connections *Connections
	HTTP        *http.Client
	Log         *slog.Logger
	// RightsTTL is how long the portal's answer about a token is trusted: rights are
	// checked at the moment of use, at most this stale. 0, or more than a minute,
	// is a minute.
	RightsTTL time.Duration
	// TokenCache is the most answers kept (0 = 10,000); CheckTimeout bounds one
	// question to the portal (0 = 3 s).
	TokenCache   int
	CheckTimeout time.Duration
	// Clock is the time the cache is kept by; nil: time.Now.
	Clock func() time.Time

	mu       sync.Mutex
	tokens   map[tokenKey]tokenEntry
	installs *bitrix24.Limiter // guarded by mu until made; see installChecks
}

// Installations checked at the OAuth server, for every portal together. An
// ONAPPINSTALL is a claim anyone can post, and each check sends the application's
// secret to Bitrix24's OAuth server: a stranger must not decide how often, as a
// server that throttles the application would stop every portal's token renewals.
// Installations are rare; past this the claim is answered 503 without a request.
const (
	installChecksPerSecond = 0.5
	installChecksBurst     = 10
)

// ErrInstallsBusy: more installations were claimed lately than are checked; the
// portal (or the stranger) may post again later.
var ErrInstallsBusy = errors.New("too many installations to check now")

func (a *App) installChecks() *bitrix24.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.installs == nil {
		a.installs = bitrix24.NewShare(installChecksPerSecond, installChecksBurst)
	}
	return a.installs
}

// maxRightsTTL is the stalest an answer about rights may be.
const maxRightsTTL = time.Minute

// tokenKey names a token by a digest: the token itself is not kept.
type tokenKey struct {
	portal int64
	digest [sha256.Size]byte
}

type tokenEntry struct {
	owner   bitrix24.TokenOwner
	refusal string // why the portal refused the token; "" for a token it took
	until   time.Time
}

// Authenticate implements Authenticator.
func (a *App) Authenticate(ctx context.Context, ev bitrix24.Event) (Origin, error) {
	head := ev.Head()
	if install, ok := ev.(*bitrix24.AppInstall); ok {
		id, err := a.install(ctx, install)
		return Origin{PortalID: id}, err
	}
	if bitrix24.IsV2(head.Type) {
		// Webhook mode's v2 events carry at the top level only the domain and the
		// application token; the one user token (data[bot][auth]) is not the author's.
		return Origin{}, fmt.Errorf("an imbot.v2 event posted in app mode cannot prove its author: %w", bitrix24.ErrNotGenuine)
	}
	if head.Auth.MemberID == "" || head.Auth.ApplicationToken == "" {
		return Origin{}, fmt.Errorf("no member_id or application token: %w", bitrix24.ErrNotGenuine)
	}
	p, err := a.Store.PortalByMemberID(ctx, head.Auth.MemberID)
	if errors.Is(err, storage.ErrNotFound) {
		return Origin{}, fmt.Errorf("member_id of no portal that installed the application: %w", bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return Origin{}, err
	}
	if !tokenMatches(head.Auth.ApplicationToken, p.ApplicationToken) {
		return Origin{}, fmt.Errorf("application token does not match the portal's: %w", bitrix24.ErrNotGenuine)
	}
	if _, uninstall := ev.(*bitrix24.AppUninstall); !uninstall && p.Removed() {
		// A removed application gets no more events; one that still comes is
		// someone replaying the token.
		return Origin{}, fmt.Errorf("the application was uninstalled from portal %s: %w", p.Domain, bitrix24.ErrNotGenuine)
	}
	o := Origin{PortalID: p.ID}
	switch ev.(type) {
	case *bitrix24.Unknown:
		return o, nil // acknowledged and ignored: it changes nothing
	case *bitrix24.AppUninstall:
		return o, a.confirmGone(ctx, p, 0)
	}
	if p.Fetches() {
		return Origin{}, fmt.Errorf("portal %s fetches its bot's events, so a posted one is forged: %w", p.Domain, bitrix24.ErrNotGenuine)
	}
	if e, ok := ev.(*bitrix24.BotDelete); ok {
		return o, a.confirmGone(ctx, p, e.BotID)
	}
	owner, err := a.whose(ctx, p, head.Auth.AccessToken, CheckEvent)
	if err != nil {
		return o, err
	}
	for _, claimed := range append(claimedAuthors(ev), head.Auth.UserID) {
		if claimed != owner.User.ID {
			return Origin{}, fmt.Errorf("the event's token is user %d's, the event claims user %d: %w", owner.User.ID, claimed, bitrix24.ErrNotGenuine)
		}
	}
	o.Author = owner.User.ID
	if owner.Admin {
		o.Admin = owner.User.ID
	}
	return o, nil
}

// claimedAuthors are the users an event says it is from, wherever it says so.
func claimedAuthors(ev bitrix24.Event) []int64 {
	var ids []int64
	add := func(id int64) {
		if id != 0 {
			ids = append(ids, id)
		}
	}
	add(bitrix24.Author(ev))
	// An edit's or a deletion's FROM_USER_ID may name the message's author rather than
	// whoever changed it (a chat's owner may delete others' messages): not a claim.
	switch e := ev.(type) {
	case *bitrix24.MessageAdd:
		add(e.Message.FromUserID)
	case *bitrix24.CommandAdd:
		add(e.Message.FromUserID)
	case *bitrix24.JoinChat:
		add(e.UserID)
	}
	return ids
}

// whose asks the portal p (on its stored endpoint) whose token is and whether it is
// this application's, unless a fresh answer is cached. A token the portal refuses, or
// another application's, is bitrix24.ErrNotGenuine; no answer now, ErrUnverified.
func (a *App) whose(ctx context.Context, p storage.Portal, token string, kind int) (bitrix24.TokenOwner, error) {
	if token == "" {
		return bitrix24.TokenOwner{}, fmt.Errorf("no user access token: %w", bitrix24.ErrNotGenuine)
	}
	key := tokenKey{portal: p.ID, digest: sha256.Sum256([]byte(token))}
	a.mu.Lock()
	e, ok := a.tokens[key]
	a.mu.Unlock()
	if ok && a.now().Before(e.until) {
		return e.result()
	}
	if a.Connections == nil {
		return bitrix24.TokenOwner{}, errors.New("no connections to the portals")
	}
	client, err := a.Connections.CheckClient(ctx, p.ID, token, kind)
	if err != nil {
		return bitrix24.TokenOwner{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(a.CheckTimeout, 3*time.Second))
	defer cancel()
	owner, err := bitrix24.WhoseToken(ctx, client)
	switch {
	case refused(err):
		e = tokenEntry{refusal: "the portal refused the token (" + errorCode(err) + ")"}
	case err != nil:
		// Whatever else kept the answer away, it is no answer: nobody is taken for a
		// stranger, or for anyone else, on it.
		if !errors.Is(err, ErrBusy) {
			a.log().Warn("cannot ask the portal whose token an event or page carries", "portal", p, "err", err)
		}
		return bitrix24.TokenOwner{}, fmt.Errorf("%w: %w", ErrUnverified, err)
	case !tokenMatches(owner.AppCode, a.OAuth.ClientID):
		e = tokenEntry{refusal: "the token is another application's (" + bitrix24.Shorten(owner.AppCode, 64) + ")"}
	default:
		e = tokenEntry{owner: owner}
	}
	e.until = a.now().Add(min(cmp.Or(a.RightsTTL, maxRightsTTL), maxRightsTTL))
	a.remember(key, e)
	return e.result()
}

func (e tokenEntry) result() (bitrix24.TokenOwner, error) {
	if e.refusal != "" {
		return bitrix24.TokenOwner{}, fmt.Errorf("%s: %w", e.refusal, bitrix24.ErrNotGenuine)
	}
	return e.owner, nil
}

// remember caches an answer. Bounded: a portal's users are many, and forged tokens
// more; expired answers go first, then any.
func (a *App) remember(key tokenKey, e tokenEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = map[tokenKey]tokenEntry{}
	}
	if size := cmp.Or(a.TokenCache, 10_000); len(a.tokens) >= size {
		now := a.now()
		for k, old := range a.tokens {
			if now.After(old.until) || len(a.tokens) >= size {
				delete(a.tokens, k)
			}
		}
	}
	a.tokens[key] = e
}

// confirmGone asks the portal, with the application's own tokens, whether what an
// event says of the application is so: that it was removed (botID 0), or that its
// bot botID was. Removal kills the application's tokens (on-app-uninstall.md), so a
// portal that still takes them, or still lists the bot, shows the event forged.
func (a *App) confirmGone(ctx context.Context, p storage.Portal, botID int64) error {
	if a.Connections == nil {
		return errors.New("no connections to the portals")
	}
	client, err := a.Connections.AppCheckClient(ctx, p.ID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(a.CheckTimeout, 3*time.Second))
	defer cancel()
	if botID == 0 {
		_, err = bitrix24.AppCode(ctx, client)
	} else {
		var bots []bitrix24.RegisteredBot
		if bots, err = bitrix24.Bots(ctx, client); err == nil {
			if !slices.ContainsFunc(bots, func(b bitrix24.RegisteredBot) bool { return b.ID == botID }) {
				return nil
			}
			return fmt.Errorf("portal %s still lists bot %d: %w", p.Domain, botID, bitrix24.ErrNotGenuine)
		}
	}
	switch {
	case err == nil:
		a.log().Warn("an ONAPPUNINSTALL while the application still works on the portal: refused", "portal", p)
		return fmt.Errorf("the application still works on portal %s: %w", p.Domain, bitrix24.ErrNotGenuine)
	case refused(err):
		return nil // the application's own tokens are dead: it is gone, and its bots with it
	case botID == 0 && permanent(err):
		// app.info answers any application that is installed ("who can execute the
		// method: any user"); a lasting refusal of it means the application is not.
		return nil
	}
	return fmt.Errorf("%w: ask the portal whether the application is still installed: %w", ErrUnverified, err)
}

// refused: the portal (or the OAuth server, renewing the application's token)
// refused the token itself.
func refused(err error) bool {
	var re *bitrix24.RefreshError
	var be *bitrix24.Error
	if errors.As(err, &re) {
		// A user's token is never renewed (its refusal is no *bitrix24.Error); the
		// application's, renewed, is refused by the OAuth server (invalid_grant).
		var te *bitrix24.TransportError
		return !errors.As(re.Cause(), &te) && !(errors.As(re.Cause(), &be) && be.Temporary())
	}
	return errors.As(err, &be) && (be.HTTPStatus == http.StatusUnauthorized || errors.Is(be, bitrix24.ErrNoAuthFound) ||
		errors.Is(be, bitrix24.ErrInvalidToken) || errors.Is(be, bitrix24.ErrExpiredToken))
}

// permanent: the portal refused the call for good (not a rate limit, not a failure
// of its own).
func permanent(err error) bool {
	var be *bitrix24.Error
	return errors.As(err, &be) && !be.Temporary()
}

func errorCode(err error) string {
	var be *bitrix24.Error
	if errors.As(err, &be) {
		return be.Code
	}
	return "refresh refused"
}

// install verifies an ONAPPINSTALL and records the portal. The event is only a
// claim — anyone can post one — so its refresh token is exchanged at the OAuth server
// with the application's secret: only a genuine installation has one that works, and
// the server's answer, not the event, says which portal it is and where it lives.
func (a *App) install(ctx context.Context, ev *bitrix24.AppInstall) (int64, error) {
	if ev.Auth.RefreshToken == "" || ev.Auth.ApplicationToken == "" || ev.Auth.MemberID == "" {
		return 0, fmt.Errorf("installation without tokens: %w", bitrix24.ErrNotGenuine)
	}
	// A live installation keeps its application token. Its events carry the users'
	// refresh tokens, so anyone who saw one event body could otherwise "install" again
	// with their own application token and lock the portal out. A genuine reinstall
	// comes after ONAPPUNINSTALL (bound at installation), which clears the way.
	if p, err := a.Store.PortalByMemberID(ctx, ev.Auth.MemberID); err == nil && p.Installed() &&
		!tokenMatches(ev.Auth.ApplicationToken, p.ApplicationToken) {
		a.log().Error("an installation with a new application token for a portal that has not uninstalled the application; refused. "+
			"If the portal really reinstalled it, remove the application there and install it again", "portal", p)
		return 0, fmt.Errorf("installation replacing a live one: %w", bitrix24.ErrNotGenuine)
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, err
	}
	if !a.installChecks().TryTake() { // logged and counted by the route, answered 503
		return 0, ErrInstallsBusy
	}
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	ts, err := bitrix24.RefreshToken(ctx, hc, bitrix24.TokenURL(a.OAuth.URL), a.OAuth.ClientID, a.OAuth.ClientSecret, ev.Auth.RefreshToken)
	if err != nil {
		var be *bitrix24.Error
		if errors.As(err, &be) {
			return 0, fmt.Errorf("installation refused by the OAuth server (%s): %w", be.Code, bitrix24.ErrNotGenuine)
		}
		return 0, fmt.Errorf("verify the installation: %w", err)
	}
	if ts.MemberID != ev.Auth.MemberID || ts.ClientEndpoint == "" {
		return 0, fmt.Errorf("installation claims member_id %s, its token belongs to %s: %w", ev.Auth.MemberID, ts.MemberID, bitrix24.ErrNotGenuine)
	}
	// Only an administrator installs applications; a user's token from an ordinary
	// event does not make an installation.
	admin, err := bitrix24.IsAdmin(ctx, bitrix24.NewClient(ts.ClientEndpoint, bitrix24.WithTokens(bitrix24.StaticToken(ts.AccessToken)),
		bitrix24.WithHTTPClient(hc)))
	if err != nil {
		return 0, fmt.Errorf("verify the installation: %w", err)
	}
	if !admin {
		return 0, fmt.Errorf("installation by user %d, who is not an administrator: %w", ts.UserID, bitrix24.ErrNotGenuine)
	}
	var portal storage.Portal
	err = a.Store.Update(ctx, func(tx *storage.Tx) (err error) {
		portal, err = tx.InstallPortal(storage.Installation{
			MemberID: ts.MemberID, Domain: endpointHost(ts.ClientEndpoint), ClientEndpoint: ts.ClientEndpoint,
			ApplicationToken: ev.Auth.ApplicationToken, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken,
			TokenExpiresAt: ts.ExpiresAt, InstalledBy: ts.UserID,
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	if a.Connections != nil {
		a.Connections.Forget(portal.ID)
	}
	a.log().Info("application installed", "portal", portal)
	return portal.ID, nil
}

// FetchedAdmin is Origin.Admin for an event fetched from the portal's queue (imbot.v2
// fetch mode): it carries no token to ask user.admin with, so the one administrator
// known is the one who installed the application. Webhook mode recognises every one.
func FetchedAdmin(portal storage.Portal, ev bitrix24.Event) int64 {
	if author := bitrix24.Author(ev); author != 0 && author == portal.InstalledBy {
		return author
	}
	return 0
}

// endpointHost is the portal's domain. The OAuth server's answer names the portal by
// its client_endpoint; its "domain" field is the OAuth server's own.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Host
}

func (a *App) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

func (a *App) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}
