package portals_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/portals"
)

// TestViewer: a page's opening is believed only with the application token of the
// portal its member_id names, and names the user the portal says its AUTH_ID is;
// the answer is cached, and the cache is bounded.
func TestViewer(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	pa, pb := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	pa.SetAdmins(1, 27)
	pa.SetUserName(27, "Анна", "Петрова")
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	auth := &portals.App{Store: store, OAuth: app, Connections: portals.NewConnections(store, app, 50, 250, nil, nil), TokenCache: 3}
	idA := install(t, auth, pa)
	install(t, auth, pb)
	open := func(p *b24test.Portal, user int64, set map[string]string) (portals.Viewer, error) {
		pl, err := bitrix24.DecodePlacement(p.PlacementOpen(user, "chat1001", set))
		if err != nil {
			t.Fatal(err)
		}
		return auth.Viewer(context.Background(), pl)
	}
	v, err := open(pa, 27, nil)
	if err != nil || v != (portals.Viewer{PortalID: idA, UserID: 27, Name: "Анна Петрова", Admin: true}) {
		t.Fatalf("viewer %+v, %v", v, err)
	}
	if v, err := open(pa, 50, nil); err != nil || v.UserID != 50 || v.Admin {
		t.Fatalf("an agent: %+v, %v", v, err)
	}

	_, bBody := pb.PlacementOpen(27, "", nil)
	other, _ := bitrix24.DecodePlacement(nil, bBody)
	for name, set := range map[string]map[string]string{
		"a forged application token":      {"APPLICATION_TOKEN": "ec1b2074a9d3f5c81b6e40d27a95cf38"},
		"portal B's token for portal A":   {"APPLICATION_TOKEN": pb.ApplicationToken()},
		"an unknown member_id":            {"member_id": "ffffffffffffffffffffffffffffffff"},
		"no AUTH_ID":                      {"AUTH_ID": b24test.Drop},
		"an AUTH_ID the portal never saw": {"AUTH_ID": "6061e72600631fcd00005a4b00000001f0f1076700000000f69dd5fc643d9ce2fdbc1"},
		"portal B's user token at A":      {"AUTH_ID": other.AuthID},
	} {
		calls := len(pa.CallsTo("user.current"))
		if v, err := open(pa, 27, set); !errors.Is(err, bitrix24.ErrNotGenuine) {
			t.Errorf("%s: %+v, %v; want ErrNotGenuine", name, v, err)
		}
		if name != "an AUTH_ID the portal never saw" && name != "portal B's user token at A" && len(pa.CallsTo("user.current")) != calls {
			t.Errorf("%s: the portal was asked", name)
		}
	}
	// An AUTH_ID that expired since: the portal refuses it, and the page with it.
	pl, _ := bitrix24.DecodePlacement(pa.PlacementOpen(28, "", nil))
	pa.ExpireTokens()
	if _, err := auth.Viewer(context.Background(), pl); !errors.Is(err, bitrix24.ErrNotGenuine) {
		t.Errorf("an expired AUTH_ID: %v", err)
	}

	// Cached: the same AUTH_ID twice asks the portal once.
	pl, _ = bitrix24.DecodePlacement(pa.PlacementOpen(29, "", nil))
	before := len(pa.CallsTo("user.current"))
	for range 2 {
		if v, err := auth.Viewer(context.Background(), pl); err != nil || v.UserID != 29 {
			t.Fatalf("%+v, %v", v, err)
		}
	}
	if n := len(pa.CallsTo("user.current")) - before; n != 1 {
		t.Errorf("user.current asked %d times for one AUTH_ID", n)
	}
	for u := int64(60); u < 70; u++ {
		if _, err := open(pa, u, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := auth.CachedTokens(); n > 3 {
		t.Errorf("%d answers cached, more than the bound 3", n)
	}
}

// TestViewerProvesTheApplication: the application token, which every user reads in
// the opening, opens nothing with another application's AUTH_ID; an opening from a
// portal that sends no APPLICATION_TOKEN (older than the documentation's 2026-08
// note) is decided by app.info with its AUTH_ID.
func TestViewerProvesTheApplication(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	auth := &portals.App{Store: store, OAuth: app, Connections: portals.NewConnections(store, app, 50, 250, nil, nil)}
	id := install(t, auth, p)
	open := func(user int64, set map[string]string) (portals.Viewer, error) {
		pl, err := bitrix24.DecodePlacement(p.PlacementOpen(user, "chat1001", set))
		if err != nil {
			t.Fatal(err)
		}
		return auth.Viewer(context.Background(), pl)
	}
	const other = "local.0000000000aaaa.11111111"
	for name, set := range map[string]map[string]string{
		"another application's AUTH_ID":                    {"AUTH_ID": p.OtherAppToken(27, other)},
		"another application's AUTH_ID, no app token":      {"AUTH_ID": p.OtherAppToken(27, other), "APPLICATION_TOKEN": b24test.Drop},
		"a made-up AUTH_ID, no application token":          {"AUTH_ID": "6061e72600631fcd00005a4b00000001f0f1", "APPLICATION_TOKEN": b24test.Drop},
		"another application's AUTH_ID, another member_id": {"AUTH_ID": p.OtherAppToken(27, other), "member_id": "ffffffffffffffffffffffffffffffff"},
	} {
		if v, err := open(27, set); !errors.Is(err, bitrix24.ErrNotGenuine) {
			t.Errorf("%s: %+v, %v; want ErrNotGenuine", name, v, err)
		}
	}
	if v, err := open(27, map[string]string{"APPLICATION_TOKEN": b24test.Drop}); err != nil || v.PortalID != id || v.UserID != 27 {
		t.Errorf("no APPLICATION_TOKEN, this application's AUTH_ID: %+v, %v", v, err)
	}
	if n := len(p.CallsTo("app.info")); n == 0 {
		t.Error("app.info was never asked")
	}
}

// waitCounter counts the requests that had to wait for room in a portal's bucket.
type waitCounter struct{ n, longest atomic.Int64 }

func (w *waitCounter) ObserveCall(string, string, time.Duration) {}
func (w *waitCounter) ObserveRateLimitWait(d time.Duration) {
	w.n.Add(1)
	for {
		old := w.longest.Load()
		if int64(d) <= old || w.longest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// TestPageFloodKeepsTheRepliesShare: a hundred users open the page at once on a
// portal with the cloud's limit (2 a second, 50 deep). The openings' checks reach the
// portal only within the pages' share of its bucket (a quarter: 12 requests); the
// others are refused at once as busy (the page's 503), and a reply right after waits
// behind none of them.
func TestPageFloodKeepsTheRepliesShare(t *testing.T) {
	o := b24test.NewOAuth(t, clientID, clientSecret)
	p := b24test.NewAppPortal(t, o)
	store := openStore(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: clientSecret, URL: o.URL() + "/"}
	waits := &waitCounter{}
	conns := portals.NewConnections(store, app, 2, 50, nil, waits)
	auth := &portals.App{Store: store, OAuth: app, Connections: conns}
	id := install(t, auth, p)
	var openings []bitrix24.Placement
	for user := int64(100); user < 200; user++ {
		pl, err := bitrix24.DecodePlacement(p.PlacementOpen(user, "", nil))
		if err != nil {
			t.Fatal(err)
		}
		openings = append(openings, pl)
	}
	before := p.Requests()
	var opened, busy atomic.Int64
	var wg sync.WaitGroup
	for _, pl := range openings {
		wg.Go(func() {
			_, err := auth.Viewer(context.Background(), pl)
			switch {
			case err == nil:
				opened.Add(1)
			case errors.Is(err, portals.ErrBusy):
				busy.Add(1)
			default:
				t.Errorf("an opening: %v", err)
			}
		})
	}
	wg.Wait()
	const share = 12 // a quarter of the 50
	if n := p.Requests() - before; n > share || int64(n) != opened.Load() {
		t.Errorf("the openings made %d requests to the portal (%d opened), their share is %d", n, opened.Load(), share)
	}
	if busy.Load() == 0 {
		t.Error("no opening was refused as busy")
	}
	client, err := conns.Client(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	waits.n.Store(0)
	waits.longest.Store(0)
	if _, err := client.Call(context.Background(), "app.info", nil); err != nil {
		t.Fatal(err)
	}
	// The bucket is assumed full at start (a restarted bot cannot know what its
	// predecessor spent), so the reply may wait for one place; not for the openings'.
	if w := time.Duration(waits.longest.Load()); w > time.Second/2+100*time.Millisecond {
		t.Errorf("the reply waited %v for room in the bucket: the openings took the replies' share", w)
	}
}
