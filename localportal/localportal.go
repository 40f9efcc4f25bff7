// Package localportal is the local portal: with no Bitrix24 portal configured, the
// bot runs against a stand-in inside the process — the fake portal of the tests
// (bitrix24/b24test with b24test/botv2), made fit to run as a product. It is served on
// the bot's own listener (its REST API under /rest/, its OAuth server at
// /oauth/token/), so the bot reaches it through real HTTP exactly as a portal: the
// application is installed (ONAPPINSTALL), registers its bot through imbot.v2 in
// fetch mode and binds the sidebar; its calls pass the outbox, the limiter and the
// portal's bucket.
//
// The portal's state (people, chats, messages, tokens, the event queue) is written to
// a JSON file beside the bot's database after every change and before the change is
// answered, so a restart finds both sides where they agreed. What the messenger page
// needs (who is there, their chats, a chat's messages, writing, pressing, editing,
// renaming, the sidebar's opening) are plain methods here; the page's routes are in
// handlers, its HTML in page.go.
package localportal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
)

// ClientID is the application the local portal has installed.
const ClientID = "local.supportbot.trial"

// stateVersion is the shape of the state file; another is refused, not misread.
const stateVersion = 1

// file is the state file's content.
type file struct {
	Version      int
	Base         string // the URL the portal was served at
	ClientSecret string
	Installed    bool
	Portal       b24test.State
	V2           botv2.State
	Reads        map[int64]map[string]int64 // user → dialog → the last message they saw
}

// Portal is the running local portal.
type Portal struct {
	base, path, secret string
	log                *slog.Logger

	oauth  *b24test.OAuth
	portal *b24test.Portal
	v2     *botv2.Fake

	mu        sync.Mutex // one change and its save at a time
	installed bool
	reads     map[int64]map[string]int64
	// sidebarAuth is each person's AUTH_ID for the sidebar, kept while it is young as
	// a browser's session with the portal keeps it: a new token at every opening
	// would make every opening a check the portal's share for pages pays for.
	sidebarAuth map[int64]sidebarAuth
	queued      chan struct{} // Queued
	saved       []byte
}

// StatePath is the state file beside the database at dbPath: "supportbot.db" →
// "supportbot.portal.json".
func StatePath(dbPath string) string {
	if dbPath == "" {
		dbPath = "supportbot.db"
	}
	return strings.TrimSuffix(dbPath, filepath.Ext(dbPath)) + ".portal.json"
}

// BaseURL is where a browser and the bot reach the local portal when the bot
// listens on addr: "http://localhost:8080" for ":8080", the host itself when one is
// named.
func BaseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Open starts the local portal served at base, from the state file at path, or, if
// there is none, a new one with the seeded people.
func Open(path, base string, log *slog.Logger) (*Portal, error) {
	base = strings.TrimRight(base, "/")
	if u, err := url.Parse(base); err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("local portal: %q is not an http URL", base)
	}
	lp := &Portal{base: base, path: path, log: log, reads: map[int64]map[string]int64{}, queued: make(chan struct{}, 1)}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		lp.secret = randomHex(24)
		lp.oauth, lp.portal = b24test.NewLocalApp(base, ClientID, lp.secret)
		lp.portal.SetScopes("imbot", "im", "user", "placement")
		lp.portal.SetAdmins(Administrators()...)
		lp.v2 = botv2.Attach(lp.portal)
		for _, p := range People {
			lp.portal.SetUserName(p.ID, p.FirstName, p.LastName)
			lp.v2.SetUser(p.ID, p.FirstName, p.LastName)
		}
		lp.v2.OnQueue(lp.signalQueued)
		return lp, lp.save()
	case err != nil:
		return nil, fmt.Errorf("local portal: %w", err)
	}
	var f file
	if err := json.Unmarshal(raw, &f); err != nil || f.Version != stateVersion || f.ClientSecret == "" {
		return nil, fmt.Errorf("local portal: %s is not a state file of this version: move it away to start anew", path)
	}
	if f.Base != base {
		// The bot knows the portal by its address (the client endpoint it was installed
		// with): a portal that moved is another portal to it.
		return nil, fmt.Errorf("local portal: %s is the portal of %s, not of %s: listen there again (http.addr), or move the file and the database away to start anew",
			path, f.Base, base)
	}
	lp.secret, lp.installed, lp.saved = f.ClientSecret, f.Installed, raw
	lp.oauth, lp.portal = b24test.RestoreLocalApp(base, f.ClientSecret, f.Portal)
	lp.v2 = botv2.Restore(lp.portal, f.V2)
	lp.v2.OnQueue(lp.signalQueued)
	for u, m := range f.Reads {
		lp.reads[u] = m
	}
	return lp, nil
}

// Base is the portal's URL.
func (lp *Portal) Base() string { return lp.base }

// ClientSecret is the installed application's secret, for the bot's configuration.
func (lp *Portal) ClientSecret() string { return lp.secret }

// OAuthURL is the application's OAuth server.
func (lp *Portal) OAuthURL() string { return lp.base + "/" }

// Queued is signalled when an event is queued for the bot: the poller, in the same
// process, need not wait for its next poll (it still polls as a real portal asks).
func (lp *Portal) Queued() <-chan struct{} { return lp.queued }

func (lp *Portal) signalQueued() {
	select {
	case lp.queued <- struct{}{}:
	default: // one signal pending is enough: the poll takes every event waiting
	}
}

// Close releases what the portal holds back.
func (lp *Portal) Close() { lp.portal.Close() }

// REST answers the portal's REST API (/rest/…) and its OAuth server (/oauth/…). A
// call's effects are written down before its answer leaves, so the bot never acts on
// something a restart would forget.
func (lp *Portal) REST() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var serve http.Handler = lp.portal
		if strings.HasPrefix(r.URL.Path, "/oauth/") {
			serve = lp.oauth
		}
		rec := httptest.NewRecorder()
		serve.ServeHTTP(rec, r)
		if err := lp.Save(); err != nil {
			lp.log.Error("local portal: state not saved: the call is refused", "err", err)
			http.Error(w, "the local portal cannot save its state", http.StatusInternalServerError)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, rec.Body)
	})
}

// Installed reports whether the application's installation was delivered.
func (lp *Portal) Installed() bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.installed
}

// Install delivers ONAPPINSTALL to the bot at eventsURL (its /bitrix/events), as the
// portal does when an administrator installs the application: the bot then
// registers itself and binds the sidebar. Once delivered, it is not sent again.
func (lp *Portal) Install(post func(url string, body []byte) (int, error), eventsURL string) error {
	if lp.Installed() {
		return nil
	}
	status, err := post(eventsURL, lp.portal.InstallEvent())
	if err != nil {
		return fmt.Errorf("local portal: install the application: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("local portal: install the application: the bot answered %d", status)
	}
	lp.mu.Lock()
	lp.installed = true
	lp.mu.Unlock()
	return lp.Save()
}

// Save writes the state down if it changed: to a temporary file, synced, then renamed
// over the old one, so a crash leaves the old state or the new, never half.
func (lp *Portal) Save() error {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.save()
}

func (lp *Portal) save() error {
	st := lp.portal.State()
	f := file{Version: stateVersion, Base: lp.base, ClientSecret: lp.secret, Installed: lp.installed, Portal: st, V2: lp.v2.State(),
		Reads: lp.reads}
	raw, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("local portal: %w", err)
	}
	if bytes.Equal(raw, lp.saved) {
		return nil
	}
	if err := writeAtomic(lp.path, raw); err != nil {
		return fmt.Errorf("local portal: save %s: %w", lp.path, err)
	}
	lp.saved = raw
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
