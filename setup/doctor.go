package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/config"
	"supportbot/storage"
)

// Doctor checks an installation piece by piece and says what to fix.
type Doctor struct {
	Config    *config.Config // as far as it could be read
	ConfigErr error          // what is wrong with it
	// Client calls the portal's webhook; nil when none is configured.
	Client Caller
	Out    io.Writer

	failed bool
}

func (d *Doctor) ok(name, detail string) { fmt.Fprintf(d.Out, "✓ %s: %s\n", name, detail) }

func (d *Doctor) warn(name, detail, fix string) {
	fmt.Fprintf(d.Out, "! %s: %s\n", name, detail)
	if fix != "" {
		fmt.Fprintf(d.Out, "    fix: %s\n", fix)
	}
}

func (d *Doctor) fail(name, detail, fix string) {
	d.failed = true
	fmt.Fprintf(d.Out, "✗ %s: %s\n", name, detail)
	if fix != "" {
		fmt.Fprintf(d.Out, "    fix: %s\n", fix)
	}
}

// Run checks everything and reports whether all is well (warnings allowed).
func (d *Doctor) Run(ctx context.Context) bool {
	cfg := d.Config
	if cfg == nil {
		d.fail("configuration", d.ConfigErr.Error(), "see the configuration table in README.md")
		return false
	}
	switch {
	case d.ConfigErr != nil:
		for _, line := range strings.Split(d.ConfigErr.Error(), "\n") {
			fix := ""
			if line == config.ErrTokenRequired.Error() {
				fix = "run `supportbot register`, then `supportbot token` and write to the bot: it prints the token to set"
			}
			if line = strings.TrimSpace(line); line != "" {
				d.fail("configuration", line, fix)
			}
		}
	case cfg.AppMode() && bitrix24.CheckAppEventMode(cfg.Bitrix.API, cfg.Bitrix.Events) != nil:
		d.fail("configuration", bitrix24.CheckAppEventMode(cfg.Bitrix.API, cfg.Bitrix.Events).Error(),
			"set bitrix.events=fetch: serve refuses to start this way")
	case cfg.AppMode():
		d.ok("configuration", "valid; app mode (client_id "+cfg.App.ClientID+")")
	case cfg.DryRun():
		d.warn("configuration", "valid, but no portal is configured: serve runs the local portal, a stand-in with a messenger page at /",
			"set bitrix.webhook_url and bitrix.application_token")
	default:
		d.ok("configuration", "valid; webhook mode on "+strings.TrimPrefix(cfg.WebhookMemberID(), "webhook:"))
	}

	store := d.checkDatabase(ctx, cfg)
	if store != nil {
		defer store.Close()
	}
	d.checkPublicURL(cfg)
	d.checkPeople(cfg)
	if d.Client != nil && !cfg.AppMode() {
		d.checkPortal(ctx, cfg, store)
	}
	if cfg.AppMode() && store != nil {
		d.checkInstallations(ctx, cfg, store)
	}
	if d.failed {
		fmt.Fprintln(d.Out, "\nsome checks failed: fix them and run `supportbot doctor` again")
	} else {
		fmt.Fprintln(d.Out, "\nall checks passed")
	}
	return !d.failed
}

func (d *Doctor) checkDatabase(ctx context.Context, cfg *config.Config) *storage.Store {
	if cfg.DB.URL != "" {
		return d.checkPostgres(ctx, cfg)
	}
	if cfg.DB.Path == "" {
		return nil // reported with the configuration
	}
	// Doctor looks and does not touch: a database that is not there is not created.
	if _, err := os.Stat(cfg.DB.Path); errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(cfg.DB.Path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			d.fail("database", cfg.DB.Path+" does not exist, and neither does its directory "+dir,
				"create the directory or point db.path into an existing one")
		} else {
			d.warn("database", cfg.DB.Path+" does not exist yet: the server creates it on its first start",
				"if the bot ran before, db.path points at the wrong file")
		}
		return nil
	}
	store, err := storage.Open(ctx, cfg.DB.Path)
	if err != nil {
		d.fail("database", err.Error(), "check db.path and that its directory exists and is writable by this user")
		return nil
	}
	if err := store.Ping(ctx); err != nil {
		d.fail("database", err.Error(), "check db.path")
		store.Close()
		return nil
	}
	d.ok("database", cfg.DB.Path+" opens and answers")
	return store
}

// checkPostgres opens the PostgreSQL database of db.url, which also applies what
// migrations it lacks: a server that runs replicas is shared, so doctor reports
// only whether it answers and can commit.
func (d *Doctor) checkPostgres(ctx context.Context, cfg *config.Config) *storage.Store {
	store, err := storage.Open(ctx, cfg.DB.URL)
	if err != nil {
		d.fail("database", err.Error(), "check db.url, and that the server runs and lets this user create tables")
		return nil
	}
	if err := store.Ping(ctx); err != nil {
		d.fail("database", err.Error(), "check the PostgreSQL server")
		store.Close()
		return nil
	}
	d.ok("database", "PostgreSQL (db.url) answers and commits")
	return store
}

func (d *Doctor) checkPublicURL(cfg *config.Config) {
	switch {
	case !cfg.Pushed() && !cfg.AppMode():
		d.ok("public URL", "not needed: the bot fetches its events from the portal (imbot.v2, bitrix.events fetch)")
	case cfg.HTTP.PublicURL == "" && cfg.DryRun():
		d.warn("public URL", "http.public_url is not set", "set it before `supportbot register`: the address Bitrix24 posts events to")
	case cfg.HTTP.PublicURL == "":
		d.fail("public URL", "http.public_url is not set: Bitrix24 would not know where to post events",
			"set http.public_url to the address the portal can reach, e.g. https://support.example.com")
	case strings.HasPrefix(cfg.HTTP.PublicURL, "http://"):
		d.warn("public URL", cfg.HandlerURL()+" is plain http: events (and their token) cross the network unencrypted",
			"serve the bot behind https")
	default:
		d.ok("public URL", "events are expected at "+cfg.HandlerURL())
	}
}

func (d *Doctor) checkPeople(cfg *config.Config) {
	if err := bot.NoRoleListsInAppMode(cfg.AppMode(), cfg.Support.Agents, cfg.Access.Admins, cfg.Access.Integrators); err != nil {
		d.fail("people", err.Error(), "remove them from the configuration: the server does not start with them")
		return
	}
	if cfg.AppMode() {
		return // each portal's administrators name its people
	}
	if len(cfg.Support.Agents) == 0 {
		d.warn("people", "support.agents is empty: nobody answers in the dialogs until an administrator names agents with /agents",
			"list the support agents' user IDs, or name them in the chat with the bot")
	}
	if len(cfg.Access.Admins)+len(cfg.Access.Integrators) == 0 {
		d.warn("people", "access.admins and access.integrators are empty: nobody may open dialogs",
			"list the portal administrators' and integrators' user IDs")
	}
}

// checkPortal asks the portal, through the webhook, about the scope and the bot.
func (d *Doctor) checkPortal(ctx context.Context, cfg *config.Config, store *storage.Store) {
	if err := CheckScope(ctx, d.Client); err != nil {
		d.fail("webhook", err.Error(), Explain(err))
		return
	}
	d.ok("webhook", "reachable, with the imbot scope")
	var portal storage.Portal
	if store != nil {
		var err error
		portal, err = store.PortalByMemberID(ctx, cfg.WebhookMemberID())
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			d.fail("bot", err.Error(), "")
			return
		}
	}
	d.checkRefusedEvents(portal)
	if portal.API == storage.APIv2 || (portal.BotID == 0 && cfg.Bitrix.API == storage.APIv2) {
		if d.checkBotV2(ctx, cfg, portal) {
			d.checkCommands(ctx, store, portal)
			d.checkBatchV2(portal)
		}
		return
	}
	bots, err := bitrix24.Bots(ctx, d.Client)
	if err != nil {
		d.fail("bot", "list bots: "+err.Error(), Explain(err))
		return
	}
	botID := cfg.Bitrix.BotID
	if botID == 0 {
		botID = portal.BotID
	}
	var found *bitrix24.RegisteredBot
	for i, b := range bots {
		if (botID != 0 && b.ID == botID) || (botID == 0 && b.Code == cfg.Bot.Code) {
			found = &bots[i]
		}
	}
	switch {
	case found == nil && botID == 0:
		d.fail("bot", "no bot is registered", "run `supportbot register`")
		return
	case found == nil:
		d.fail("bot", fmt.Sprintf("bot ID %d is not on the portal (removed in Bitrix24?)", botID), "run `supportbot register` again")
		return
	}
	d.ok("bot", fmt.Sprintf("%q (ID %d, code %s) is registered", found.Name, found.ID, found.Code))
	d.checkCommands(ctx, store, portal)
}

// checkRefusedEvents: events posted with a token other than bitrix.application_token
// were refused lately. After `register --rotate-token` in imbot.v2 webhook mode the
// portal signs its events with a new token (bots/bot-update.md), and every question
// is refused until the configuration has it.
func (d *Doctor) checkRefusedEvents(portal storage.Portal) {
	if portal.EventsRefusedAt.IsZero() || time.Since(portal.EventsRefusedAt) > 24*time.Hour {
		return
	}
	d.warn("events", fmt.Sprintf("events posted with another application token were refused, the last at %s",
		portal.EventsRefusedAt.UTC().Format(time.RFC3339)),
		"if the bot's token was rotated in webhook mode, the portal's events carry a new application token: "+
			"get it with `supportbot token` and set bitrix.application_token; otherwise someone posts forged events")
}

// OldestEventWarning is how long an event may wait in a v2 bot's queue before doctor
// warns that the portal may drop it: imbot.v2 does not say how long it keeps events,
// im.v2 keeps them 24 h, so an hour leaves room to act.
const OldestEventWarning = time.Hour

// checkBatchV2 says how the bot's calls reach the portal: in batch, or one a request
// because the portal refused imbot.v2 methods inside batch (until a day after).
func (d *Doctor) checkBatchV2(portal storage.Portal) {
	if portal.SingleCalls(time.Now()) {
		d.warn("batch", fmt.Sprintf("the portal refused imbot.v2 methods inside batch at %s: replies go one a request (slower under load)",
			portal.BatchRefusedAt.UTC().Format(time.RFC3339)),
			"nothing to do: batch is tried again at "+portal.BatchRefusedAt.Add(storage.BatchRetryAfter).UTC().Format(time.RFC3339)+
				"; see supportbot_v2_batch_refused_total")
		return
	}
	d.ok("batch", "replies go in batch, up to 50 calls a request")
}

// checkBotV2 looks for the imbot.v2 bot, its event mode and, in fetch mode, how
// far behind the portal's queue the poller is. It reports whether the bot is there.
func (d *Doctor) checkBotV2(ctx context.Context, cfg *config.Config, portal storage.Portal) bool {
	bots, err := bitrix24.BotsV2(ctx, d.Client, portal.BotToken)
	if err != nil {
		d.fail("bot", "list imbot.v2 bots: "+err.Error(), Explain(err))
		return false
	}
	i := slices.IndexFunc(bots, func(b bitrix24.BotV2) bool {
		return (portal.BotID != 0 && b.ID == portal.BotID) || (portal.BotID == 0 && b.Code == cfg.Bot.Code)
	})
	switch {
	case i < 0 && portal.BotID == 0:
		d.fail("bot", "no bot is registered", "run `supportbot register`")
		return false
	case i < 0:
		d.fail("bot", fmt.Sprintf("bot ID %d is not on the portal (removed in Bitrix24?)", portal.BotID), "run `supportbot register` again")
		return false
	case portal.BotID == 0:
		d.fail("bot", fmt.Sprintf("bot %q (ID %d) is on the portal, but this database does not know it", bots[i].Code, bots[i].ID),
			"run `supportbot register`")
		return false
	}
	found := bots[i]
	d.ok("bot", fmt.Sprintf("ID %d, code %s, imbot.v2 %s, events by %s", found.ID, found.Code, found.Type, found.EventMode))
	if found.EventMode != cfg.Bitrix.Events {
		d.warn("events", fmt.Sprintf("the bot takes its events by %s, but bitrix.events is %s", found.EventMode, cfg.Bitrix.Events),
			"run `supportbot register` to apply bitrix.events")
	}
	if found.EventMode != storage.EventsFetch {
		return true
	}
	// A peek at the queue from the offset already processed: it confirms nothing new.
	page, err := bitrix24.FetchEvents(ctx, d.Client, bitrix24.Context{BotID: portal.BotID, BotToken: portal.BotToken}, portal.Offset(), 1)
	switch {
	case err != nil:
		d.fail("events", "cannot read the event queue: "+err.Error(), Explain(err))
	case len(page.Events) == 0:
		d.ok("events", "fetched from the portal; none waiting")
	default:
		lag := time.Since(page.Events[0].Head().Time).Round(time.Second)
		more := ""
		if page.HasMore {
			more = " and more after it"
		}
		if lag > OldestEventWarning {
			// How long the portal keeps unconfirmed events is not written for imbot.v2
			// (im.v2 keeps them 24 h): an event this old may be dropped before it is read.
			d.warn("events", fmt.Sprintf("an event has waited %s in the portal's queue%s: the portal may drop events kept this long", lag, more),
				"start `supportbot serve` now (it must reach the portal); alert on supportbot_fetch_lag_seconds > 3600")
		} else if lag > time.Minute {
			d.warn("events", fmt.Sprintf("an event has waited %s in the portal's queue%s: the poller is behind", lag, more),
				"make sure `supportbot serve` is running and reaches the portal; see supportbot_fetch_lag_seconds")
		} else {
			d.ok("events", fmt.Sprintf("fetched from the portal; the oldest waiting is %s old%s", lag, more))
		}
	}
	return true
}

// checkCommands reports commands the database does not know as registered.
func (d *Doctor) checkCommands(ctx context.Context, store *storage.Store, portal storage.Portal) {
	if store == nil {
		return
	}
	stored, err := store.Commands(ctx, portal.ID)
	if err != nil {
		d.fail("commands", err.Error(), "")
		return
	}
	var missing []string
	for _, c := range bot.Commands() {
		if _, ok := stored[c.Name]; !ok {
			missing = append(missing, "/"+c.Name)
		}
	}
	if len(missing) > 0 {
		d.fail("commands", "not registered: "+strings.Join(missing, " "), "run `supportbot register`")
		return
	}
	d.ok("commands", fmt.Sprintf("all %d registered", len(stored)))
}

// checkInstallations reports, in app mode, every portal that installed the
// application and whether its bot got registered there.
func (d *Doctor) checkInstallations(ctx context.Context, cfg *config.Config, store *storage.Store) {
	list, err := store.Installations(ctx)
	if err != nil {
		d.fail("installations", err.Error(), "")
		return
	}
	if len(list) == 0 {
		d.warn("installations", "no portal has installed the application yet",
			"install it on a portal, with "+cfg.HandlerURL()+" as its installation handler")
		return
	}
	for _, p := range list {
		name := "portal " + p.Domain
		entries, err := store.Outbox(ctx, p.ID)
		if err != nil {
			d.fail(name, err.Error(), "")
			continue
		}
		d.checkSidebar(name, entries)
		if p.BotID != 0 {
			d.ok(name, fmt.Sprintf("installed; bot ID %d", p.BotID))
			continue
		}
		var failed, pending *storage.OutboxRow
		for i, e := range entries {
			switch {
			case e.Kind != bitrix24.KindRegisterBot:
			case e.State == storage.OutboxFailed:
				failed = &entries[i]
			case e.State == storage.OutboxPending:
				pending = &entries[i]
			}
		}
		switch {
		case pending != nil:
			d.warn(name, "installed; the bot's registration is still queued ("+pending.LastError+")",
				"keep the server running: it retries")
		case failed != nil:
			d.fail(name, "installed, but the portal refused to register the bot: "+failed.LastError,
				"give the application the imbot scope, then reinstall it on the portal")
		default:
			d.fail(name, "installed, but no bot is registered", "reinstall the application on the portal")
		}
	}
}

// checkSidebar warns when the portal refused the sidebar's item (the placement
// scope missing, most likely): the bot works, the page is not offered.
func (d *Doctor) checkSidebar(name string, entries []storage.OutboxRow) {
	for _, e := range slices.Backward(entries) {
		if e.Kind != bitrix24.KindBindPlacement {
			continue
		}
		if e.State == storage.OutboxFailed && !strings.Contains(e.LastError, "already binded") {
			d.warn(name, "the portal refused the chat sidebar's item: "+e.LastError,
				"give the application the placement scope, then reinstall it on the portal")
		}
		return
	}
}

// ErrFailed is what the doctor command returns when a check failed.
var ErrFailed = errors.New("doctor found problems")
