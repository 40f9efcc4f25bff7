package portals_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/portals"
	"supportbot/storage"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

const (
	clientID     = "local.6741a1b2c3d4e5.12345678"
	clientSecret = "Xy7secretOfTheApplication0123456789abcdefGHIJ"
)

func openStore(t *testing.T) *storage.Store { return storagetest.Open(t) }

// install posts the portal's ONAPPINSTALL through AppAuth, as the events route does.
func install(t *testing.T, auth *portals.App, p *b24test.Portal) int64 {
	t.Helper()
	ev, err := bitrix24.Decode(p.InstallEvent())
	if err != nil {
		t.Fatal(err)
	}
	o, err := auth.Authenticate(context.Background(), ev)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return o.PortalID
}

// messageFrom is ONIMBOTMESSAGEADD from user in their chat with the bot, as portal p
// sends it to the application (with the user's access token), then set applied.
func messageFrom(p *b24test.Portal, user int64, set map[string]string) []byte {
	u := strconv.FormatInt(user, 10)
	fields := map[string]string{"data[PARAMS][FROM_USER_ID]": u, "data[PARAMS][AUTHOR_ID]": u, "data[PARAMS][DIALOG_ID]": u,
		"data[USER][ID]": u}
	maps.Copy(fields, set)
	return p.AppEvent("v1/onimbotmessageadd-private.form", user, fields)
}

// TestOneRefreshUnderConcurrentCalls: when every token has expired, 20 calls at once
// through the portal's client cause exactly one refresh at the OAuth server, all 20
// succeed, and the new refresh token is in the database by the time they return.
func TestOneRefreshUnderConcurrentCalls(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	pa, pb := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	conns := portals.NewConnections(store, app, 50, 250, nil, nil)
	auth := &portals.App{Store: store, OAuth: app, Connections: conns}
	idA, idB := install(t, auth, pa), install(t, auth, pb)
	if idA == idB {
		t.Fatalf("two portals stored as one (%d)", idA)
	}

	client, err := conns.Client(context.Background(), idA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Call(context.Background(), "app.info", nil); err != nil {
		t.Fatalf("call with the installation's token: %v", err)
	}
	before := o.RefreshesFor(pa.MemberID())
	stored, _ := store.Portal(context.Background(), idA)

	pa.ExpireTokens()
	o.SetRefreshDelay(200 * time.Millisecond) // the others pile up behind the one refresh
	const calls = 20
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	start := make(chan struct{})
	for range calls {
		wg.Go(func() {
			<-start
			_, err := client.Call(context.Background(), "app.info", nil)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call after expiry: %v", err)
		}
	}
	if got := o.RefreshesFor(pa.MemberID()) - before; got != 1 {
		t.Fatalf("%d refreshes for %d concurrent calls, want exactly 1", got, calls)
	}
	after, err := store.Portal(context.Background(), idA)
	if err != nil {
		t.Fatal(err)
	}
	if after.RefreshToken == stored.RefreshToken || after.AccessToken == stored.AccessToken || !after.TokenExpiresAt.After(time.Now()) {
		t.Fatalf("new tokens not stored: before %q/%q, after %q/%q expiring %v",
			stored.AccessToken, stored.RefreshToken, after.AccessToken, after.RefreshToken, after.TokenExpiresAt)
	}

	// A new process (new Connections) starts from the stored tokens and needs no refresh.
	fresh := portals.NewConnections(store, app, 50, 250, nil, nil)
	c2, err := fresh.Client(context.Background(), idA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Call(context.Background(), "app.info", nil); err != nil {
		t.Fatalf("call from the stored tokens: %v", err)
	}
	if got := o.RefreshesFor(pa.MemberID()) - before; got != 1 {
		t.Fatalf("restart refreshed again: %d refreshes", got)
	}
	// Portal B's tokens were not touched.
	if o.RefreshesFor(pb.MemberID()) != 1 { // the one that verified its installation
		t.Fatalf("portal B refreshed %d times", o.RefreshesFor(pb.MemberID()))
	}
}

// TestForgedInstallations: an ONAPPINSTALL is believed only when the OAuth server
// accepts its refresh token for the member_id it claims.
func TestForgedInstallations(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	pa, pb := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	auth := &portals.App{Store: store, OAuth: app}

	decode := func(body []byte) bitrix24.Event {
		ev, err := bitrix24.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	cases := map[string]bitrix24.Event{
		"made-up refresh token": decode(b24test.Event("app/onappinstall.form", map[string]string{
			"auth[member_id]": pa.MemberID(), "auth[refresh_token]": "0123456789", "auth[application_token]": "x"})),
		"no refresh token": decode(b24test.Event("app/onappinstall.form", map[string]string{
			"auth[member_id]": pa.MemberID(), "auth[refresh_token]": ""})),
		"A's token claiming B": decode(pa.InstallEvent()),
	}
	cases["A's token claiming B"].(*bitrix24.AppInstall).Auth.MemberID = pb.MemberID()
	for name, ev := range cases {
		if _, err := auth.Authenticate(context.Background(), ev); !errors.Is(err, bitrix24.ErrNotGenuine) {
			t.Errorf("%s: got %v, want ErrNotGenuine", name, err)
		}
	}
	// A non-administrator's refresh token, taken from an ordinary event of theirs.
	pa.SetAdmins(1)
	message, err := bitrix24.ParseForm(pa.AppEvent("v1/onimbotmessageadd-private.form", 27, nil))
	if err != nil {
		t.Fatal(err)
	}
	fromMessage := decode(pa.InstallEvent()).(*bitrix24.AppInstall)
	fromMessage.Auth.RefreshToken = message.Group("auth").String("refresh_token")
	if fromMessage.Auth.RefreshToken == "" {
		t.Fatal("the message event carries no refresh token")
	}
	if _, err := auth.Authenticate(context.Background(), fromMessage); !errors.Is(err, bitrix24.ErrNotGenuine) {
		t.Errorf("installation with a non-administrator's token: got %v", err)
	}

	// Once installed, another installation with a new application token is refused
	// (even with an administrator's token), until the portal uninstalls the application.
	install(t, auth, pa)
	again := decode(pa.InstallEvent()).(*bitrix24.AppInstall)
	genuine := again.Auth.ApplicationToken
	again.Auth.ApplicationToken = "attacker's"
	if _, err := auth.Authenticate(context.Background(), again); !errors.Is(err, bitrix24.ErrNotGenuine) {
		t.Errorf("installation replacing a live one: got %v", err)
	}
	if p, _ := store.PortalByMemberID(context.Background(), pa.MemberID()); p.ApplicationToken != genuine {
		t.Errorf("stored application token replaced")
	}
	if _, err := auth.Authenticate(context.Background(), decode(pa.InstallEvent())); err != nil {
		t.Errorf("the same installation again (same application token): %v", err)
	}

	// A wrong secret: the OAuth server refuses every installation.
	wrong := &portals.App{Store: store, OAuth: portals.OAuthApp{ClientID: clientID, ClientSecret: "wrong", URL: o.URL() + "/"}}
	if _, err := wrong.Authenticate(context.Background(), decode(pa.InstallEvent())); !errors.Is(err, bitrix24.ErrNotGenuine) {
		t.Errorf("wrong client secret: got %v", err)
	}
	if _, err := store.PortalByMemberID(context.Background(), pb.MemberID()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused installation was stored: %v", err)
	}
}

// TestForgedInstallationsFlood: anyone may post ONAPPINSTALL, and each one checked
// sends the application's secret to the OAuth server. A flood of made-up ones is
// checked no faster than installations come (about 10 at once, then one each 2 s): the
// rest are answered "busy", not sent on, and a genuine one gets through once the
// flood has passed.
func TestForgedInstallationsFlood(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	var asked atomic.Int64
	target, err := url.Parse(o.URL())
	if err != nil {
		t.Fatal(err)
	}
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(counting.Close)
	auth := &portals.App{Store: openStore(t), OAuth: portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: counting.URL + "/"}}
	p := b24test.NewAppPortal(t, o)
	var wg sync.WaitGroup
	var busy atomic.Int64
	start := time.Now()
	for i := range 300 {
		wg.Go(func() {
			ev, err := bitrix24.Decode(b24test.Event("app/onappinstall.form", map[string]string{
				"auth[member_id]": fmt.Sprintf("member%05d", i), "auth[refresh_token]": fmt.Sprintf("refresh%05d", i),
				"auth[application_token]": "x", "auth[domain]": p.Domain()}))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := auth.Authenticate(context.Background(), ev); errors.Is(err, portals.ErrInstallsBusy) {
				busy.Add(1)
			} else if !errors.Is(err, bitrix24.ErrNotGenuine) {
				t.Errorf("a forged installation: %v", err)
			}
		})
	}
	wg.Wait()
	// About ten at once, and one more for each 2 s the flood lasted (a slow machine).
	most := 10 + int64(time.Since(start)/(2*time.Second))
	if n := asked.Load(); n < 1 || n > most || busy.Load() != 300-n {
		t.Fatalf("300 forged installations: %d sent to the OAuth server (at most %d), %d answered busy", n, most, busy.Load())
	}
	testwait.For(t, "a genuine installation to be checked", func() bool {
		ev, err := bitrix24.Decode(p.InstallEvent())
		if err != nil {
			t.Fatal(err)
		}
		_, err = auth.Authenticate(context.Background(), ev)
		if err != nil && !errors.Is(err, portals.ErrInstallsBusy) {
			t.Fatal(err)
		}
		return err == nil
	})
}

// TestAdminsFromUserAdmin: in app mode user.admin, asked with the author's own token,
// makes a portal administrator the event's admin; the answer is cached by the token
// (each event body here carries the same token of its user).
func TestAdminsFromUserAdmin(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p, other := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	p.SetAdmins(1, 7)
	other.SetAdmins(1)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	conns := portals.NewConnections(store, app, 50, 250, nil, nil)
	auth := &portals.App{Store: store, OAuth: app, Connections: conns}
	id, otherID := install(t, auth, p), install(t, auth, other)
	installChecks := len(p.CallsTo("user.admin")) // the installation's own check

	bodies := map[[2]int64][]byte{}
	admin := func(from *b24test.Portal, user int64) (int64, int64) {
		t.Helper()
		key := [2]int64{0, user}
		if from == other {
			key[0] = 1
		}
		if bodies[key] == nil {
			bodies[key] = messageFrom(from, user, nil)
		}
		ev, err := bitrix24.Decode(bodies[key])
		if err != nil {
			t.Fatal(err)
		}
		origin, err := auth.Authenticate(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return origin.PortalID, origin.Admin
	}
	for range 2 { // the second time from the cache
		if portal, a := admin(p, 7); portal != id || a != 7 {
			t.Fatalf("user 7, an administrator: portal %d admin %d", portal, a)
		}
		if portal, a := admin(p, 8); portal != id || a != 0 {
			t.Fatalf("user 8, not an administrator: portal %d admin %d", portal, a)
		}
	}
	if portal, a := admin(other, 7); portal != otherID || a != 0 {
		t.Fatalf("user 7 on another portal, where they are no administrator: portal %d admin %d", portal, a)
	}
	calls := p.CallsTo("user.admin")[installChecks:]
	if len(calls) != 2 {
		t.Fatalf("%d user.admin calls, want 2 (one per user, then cached)", len(calls))
	}
	if calls[0].UserID != 7 || calls[1].UserID != 8 {
		t.Fatalf("user.admin asked as users %d and %d, want each author's own token", calls[0].UserID, calls[1].UserID)
	}
}

// TestRefreshSurvivesTheCallersDeadline: a caller that gives up while the refresh is
// under way does not lose the rotated pair: it is stored, and the next call uses it
// without refreshing again.
func TestRefreshSurvivesTheCallersDeadline(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	conns := portals.NewConnections(store, app, 50, 250, nil, nil)
	id := install(t, &portals.App{Store: store, OAuth: app, Connections: conns}, p)
	client, err := conns.Client(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	before := o.RefreshesFor(p.MemberID())
	stored, _ := store.Portal(context.Background(), id)
	p.ExpireTokens()
	o.SetRefreshDelay(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _ = client.Call(ctx, "app.info", nil) // gives up before the renewal answers
	o.SetRefreshDelay(0)
	if got := o.RefreshesFor(p.MemberID()) - before; got != 1 {
		t.Fatalf("%d refreshes, want 1", got)
	}
	if after, _ := store.Portal(context.Background(), id); after.RefreshToken == stored.RefreshToken {
		t.Fatal("the rotated refresh token was not stored")
	}
	if _, err := client.Call(context.Background(), "app.info", nil); err != nil {
		t.Fatalf("next call: %v", err)
	}
	if got := o.RefreshesFor(p.MemberID()) - before; got != 1 {
		t.Fatalf("%d refreshes after the next call, want still 1", got)
	}
}

// TestRejectedRefreshIsNotAPermanentRefusal: when the OAuth server rejects the stored
// refresh token, the call fails with a RefreshError that a retry layer does not take
// for the method's own permanent error.
func TestRejectedRefreshIsNotAPermanentRefusal(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	id := install(t, &portals.App{Store: store, OAuth: app}, p)
	stored, _ := store.Portal(context.Background(), id)
	if err := store.SaveTokens(context.Background(), id, stored.AccessToken, "spent-refresh", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	conns := portals.NewConnections(store, app, 50, 250, nil, nil)
	client, err := conns.Client(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	p.ExpireTokens()
	_, err = client.Call(context.Background(), "app.info", nil)
	var re *bitrix24.RefreshError
	var be *bitrix24.Error
	if !errors.As(err, &re) || errors.As(err, &be) {
		t.Fatalf("got %v (%T), want a RefreshError that is no *bitrix24.Error", err, err)
	}
}

// TestAdminCacheBounded: however many users write, the cache of user.admin answers
// stays within its size.
func TestAdminCacheBounded(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	conns := portals.NewConnections(store, app, 1000, 1000, nil, nil)
	auth := &portals.App{Store: store, OAuth: app, Connections: conns, TokenCache: 20}
	p.SetRateLimit(0, 0)
	install(t, auth, p)
	for user := int64(100); user < 160; user++ {
		ev, err := bitrix24.Decode(messageFrom(p, user, nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auth.Authenticate(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if n := auth.CachedTokens(); n > 20 {
		t.Fatalf("%d answers cached, the bound is 20", n)
	}
}

// TestTokensRenewedByAnotherReplica: a portal moves A → B → A between replicas and B
// renews its tokens meanwhile. A neither refreshes with the refresh token B spent
// (invalid_grant for ever) nor keeps B's old access token after it takes the portal
// back: it takes the pair B stored.
func TestTokensRenewedByAnotherReplica(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	id := install(t, &portals.App{Store: store, OAuth: app}, p)
	client := func(conns *portals.Connections) *bitrix24.Client {
		c, err := conns.Client(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := client(portals.NewConnections(store, app, 50, 250, nil, nil))
	b := client(portals.NewConnections(store, app, 50, 250, nil, nil))
	call := func(c *bitrix24.Client, who string) {
		t.Helper()
		if _, err := c.Call(context.Background(), "app.info", nil); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
	}
	call(a, "a, from the installation's tokens")
	before := o.RefreshesFor(p.MemberID())

	p.ExpireTokens()
	call(b, "b, renewing") // B rotates the refresh token A still has
	call(a, "a, whose access token expired after b renewed")
	if got := o.RefreshesFor(p.MemberID()) - before; got != 1 {
		t.Errorf("%d renewals, want b's one", got)
	}

	p.ExpireTokens()
	call(b, "b, renewing again")
	if err := a.ReloadTokens(context.Background()); err != nil { // a takes the portal back
		t.Fatal(err)
	}
	p.ExpireTokens()
	before = o.RefreshesFor(p.MemberID())
	call(a, "a, renewing after taking the portal back")
	if got := o.RefreshesFor(p.MemberID()) - before; got != 1 {
		t.Errorf("%d renewals by a, want 1", got)
	}
}

// TestDemotedAdminWithinAMinute: rights are checked at the moment of use, at most a
// minute stale, even when a longer cache is asked for: an administrator demoted on
// the portal is no administrator for an event carrying the same token a minute
// later; and the answer is the token's, never another user's claim.
func TestDemotedAdminWithinAMinute(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	p.SetAdmins(1, 7)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	auth := &portals.App{Store: store, OAuth: app, Connections: portals.NewConnections(store, app, 50, 250, nil, nil),
		RightsTTL: 10 * time.Minute, Clock: clock}
	install(t, auth, p)
	body := messageFrom(p, 7, nil)
	admin := func() int64 {
		t.Helper()
		ev, err := bitrix24.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		o, err := auth.Authenticate(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return o.Admin
	}
	if a := admin(); a != 7 {
		t.Fatalf("the administrator: admin %d", a)
	}
	p.SetAdmins(1) // demoted
	advance(30 * time.Second)
	if a := admin(); a != 7 {
		t.Fatalf("within the minute the cached answer stands: admin %d", a)
	}
	advance(31 * time.Second)
	if a := admin(); a != 0 {
		t.Fatalf("a minute after the demotion: still admin %d", a)
	}
	// A claim of user 7 with user 8's fresh token is not 7's answer from the cache.
	ev, _ := bitrix24.Decode(messageFrom(p, 8, map[string]string{"data[PARAMS][FROM_USER_ID]": "7", "data[USER][ID]": "7"}))
	if o, err := auth.Authenticate(context.Background(), ev); !errors.Is(err, bitrix24.ErrNotGenuine) {
		t.Fatalf("user 8's token claiming 7: %+v, %v", o, err)
	}
}
