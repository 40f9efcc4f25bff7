package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/config"
	"supportbot/delivery"
	"supportbot/handlers"
	"supportbot/localportal"
	"supportbot/metrics"
	"supportbot/poller"
	"supportbot/portals"
	"supportbot/schedule"
	"supportbot/sidebar"
	"supportbot/storage"
)

// shutdownGrace bounds how long a stop by signal may take.
const shutdownGrace = 10 * time.Second

func serveCommand(r *run) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the server (the default)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if r.cfgErr != nil {
				return r.cfgErr
			}
			log := r.logger()
			log.Info("starting", "version", versionString(r.version), "config", r.cfg)
			return Serve(r.ctx, r.cfg, log, nil)
		},
	}
}

// house is the running bot: every room, wired once.
type house struct {
	store      *storage.Store
	dispatcher *delivery.Dispatcher
	poller     *poller.Poller
	handler    http.Handler
	jobs       []schedule.Job
}

// assemble wires the rooms for cfg. The two modes differ only in how events are
// authenticated and how each portal is called.
func assemble(ctx context.Context, cfg *config.Config, log *slog.Logger, local *localportal.Portal) (*house, error) {
	store, err := storage.Open(ctx, cmp.Or(cfg.DB.URL, cfg.DB.Path))
	if err != nil {
		return nil, err
	}
	m := metrics.New(store)
	m.WatchServiceTimes(store)
	m.WatchTargetMisses(store)
	m.WatchKeptEvents(store)
	auth, callers, err := portalAccess(ctx, cfg, store, log, m)
	var fetchedAdmin func(storage.Portal, bitrix24.Event) int64
	if cfg.AppMode() {
		fetchedAdmin = portals.FetchedAdmin
	}
	if err != nil {
		store.Close()
		return nil, err
	}
	var messenger *handlers.Messenger
	agents, admins, tech := cfg.Support.Agents, cfg.Access.Admins, []int64(nil)
	var wake <-chan struct{}
	if local != nil {
		messenger = &handlers.Messenger{Portal: local, Log: log}
		wake = local.Queued()
		agents, tech, admins = localportal.Roles() // seeded as the configuration's lists are
	}
	brain := bot.New(bot.Config{
		Agents:         agents,
		Admins:         admins,
		Tech:           tech,
		Integrators:    cfg.Access.Integrators,
		FreePlan:       cfg.FreePlan(),
		MaxActive:      cfg.Dialogs.MaxActive,
		AutoCloseAfter: cfg.Dialogs.AutoCloseAfter, AutoCloseWarning: cfg.Dialogs.AutoCloseWarning,
		RatingWindow: cfg.Dialogs.RatingWindow,
		Language:     cfg.Bot.Language,
		Profile: bitrix24.BotProfile{Code: cfg.Bot.Code, Name: cfg.Bot.Name, Color: cfg.Bot.Color, WorkPosition: bot.WorkPosition(cfg.Bot.Language),
			HandlerURL: cfg.HandlerURL(), EventMode: cfg.Bitrix.Events},
		API:        cfg.Bitrix.API,
		SidebarURL: sidebarURL(cfg),
		Hours:      workingHours(cfg), FirstResponseTarget: cfg.SLA.FirstResponse, ReplyTarget: cfg.SLA.Reply,
	}, log)
	dispatcher := delivery.New(store, callers, brain.Outbox(), log, m)
	dispatcher.MaxAge = cfg.Delivery.MaxAge
	events := &handlers.Events{Store: store, Bot: brain, Auth: auth, Log: log, Observe: m.ObserveEvent}
	h := &house{
		store:      store,
		dispatcher: dispatcher,
		// Fetch mode: the portals whose v2 bot fetches its events are polled through
		// the same clients as the replies, so both share each portal's rate limit.
		poller: &poller.Poller{
			Store: store, Bot: brain, Log: log, Obs: m, Interval: cfg.Bitrix.PollInterval, Admin: fetchedAdmin, Wake: wake,
			Callers: func(id int64) (bitrix24.Caller, error) { return callers(id) },
		},
		jobs: []schedule.Job{{Name: "prune", Every: time.Hour, Run: func(ctx context.Context) error {
			n, err := store.Housekeep(ctx, cfg.DB.Retention, cfg.Delivery.MaxAge)
			if n > 0 {
				log.Info("pruned the database", "rows", n, "retention", cfg.DB.Retention)
			}
			return err
		}}, {Name: "auto-close", Every: bot.AutoCloseSweep(cfg.Dialogs.AutoCloseAfter, cfg.Dialogs.AutoCloseWarning), Run: func(ctx context.Context) error {
			// One replica runs it (onOneReplica); even if two did, each dialog is claimed
			// in the transaction that queues its message, so only one sweep acts on it.
			warned, closed, err := brain.AutoClose(ctx, store)
			if warned+closed > 0 {
				log.Info("auto-close", "warned", warned, "closed", closed)
			}
			return err
		}}, targetsJob(brain, store, log)},
		handler: handlers.NewServer(handlers.Routes{
			Events:      events,
			Sidebar:     sidebarRoutes(cfg, store, brain, auth, log),
			Messenger:   messenger,
			DB:          store,
			Log:         log,
			Metrics:     m.Handler(),
			ObserveHTTP: m.ObserveHTTP,
		}),
	}
	// Posted events whose author the portal could not confirm when they came.
	h.jobs = append(h.jobs, schedule.Job{Name: "kept events", Every: 2 * time.Second, Run: func(ctx context.Context) error {
		return events.RetryPending(ctx, store)
	}})
	return h, nil
}

// sidebarURL is where the portals open the sidebar page: app mode only, since
// placements are an application's.
func sidebarURL(cfg *config.Config) string {
	if !cfg.AppMode() {
		return ""
	}
	return strings.TrimRight(cfg.HTTP.PublicURL, "/") + "/bitrix/sidebar"
}

// sidebarRoutes serve the sidebar page in app mode; its tokens are signed with a key
// derived from the application's client secret.
func sidebarRoutes(cfg *config.Config, store *storage.Store, brain *bot.Bot, auth portals.Authenticator, log *slog.Logger) *handlers.Sidebar {
	app, ok := auth.(*portals.App)
	if !cfg.AppMode() || !ok {
		return nil
	}
	return &handlers.Sidebar{Store: store, Bot: brain, Auth: app, Tokens: sidebar.NewSigner(cfg.App.ClientSecret), Log: log,
		Self: publicOrigin(cfg.HTTP.PublicURL)}
}

// publicOrigin is the origin of http.public_url, "" if it has none.
func publicOrigin(public string) string {
	u, err := url.Parse(public)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// onOneReplica makes each job run on one replica only (with PostgreSQL): the one
// holding its claim, which another takes over when that one is gone.
func onOneReplica(store *storage.Store, jobs []schedule.Job) []schedule.Job {
	out := make([]schedule.Job, len(jobs))
	for i, j := range jobs {
		out[i] = j
		out[i].Run = func(ctx context.Context) error {
			if !store.Claim(ctx, storage.ClaimJob, storage.JobKey(j.Name)) {
				return nil
			}
			return j.Run(ctx)
		}
	}
	return out
}

// portalAccess is how events are authenticated and each portal is called: in app
// mode every portal that installs the application, with its own tokens, rate limit
// and bot (the local portal too); otherwise the one webhook's portal (or, with none
// configured and bitrix.no_portal "dry-run", nobody: calls are logged).
func portalAccess(ctx context.Context, cfg *config.Config, store *storage.Store, log *slog.Logger, m *metrics.Metrics) (
	portals.Authenticator, func(int64) (delivery.Caller, error), error) {
	if cfg.AppMode() {
		if err := bot.NoRoleListsInAppMode(cfg.AppMode(), cfg.Support.Agents, cfg.Access.Admins, cfg.Access.Integrators); err != nil {
			return nil, nil, err
		}
		if err := bitrix24.CheckAppEventMode(cfg.Bitrix.API, cfg.Bitrix.Events); err != nil {
			return nil, nil, err
		}
		app := portals.OAuthApp{ClientID: cfg.App.ClientID, ClientSecret: cfg.App.ClientSecret, URL: cfg.App.OAuthURL}
		conns := portals.NewConnections(store, app, cfg.Bitrix.RatePerSecond, cfg.Bitrix.Burst, log, m)
		log.Info("app mode: portals install the application", "client_id", cfg.App.ClientID)
		callers := func(portalID int64) (delivery.Caller, error) { return conns.Client(context.Background(), portalID) }
		return &portals.App{Store: store, OAuth: app, Connections: conns, Log: log}, callers, nil
	}
	portal, err := store.EnsurePortal(ctx, cfg.WebhookMemberID(), "")
	if err != nil {
		return nil, nil, err
	}
	if cfg.Bitrix.BotID != 0 && cfg.Bitrix.BotID != portal.BotID {
		if err := store.Update(ctx, func(tx *storage.Tx) error { return tx.SetBotID(portal.ID, cfg.Bitrix.BotID) }); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case cfg.DryRun():
	case portal.API == storage.APIv2 && portal.Fetches():
		log.Info("the bot fetches its events from the portal (imbot.v2)", "bot_id", portal.BotID, "poll_interval", cfg.Bitrix.PollInterval)
	case portal.BotID == 0 && !cfg.Pushed():
		log.Warn("no bot is registered on the portal yet: run `supportbot register`, which registers it through imbot.v2")
	case portal.API != cfg.Bitrix.API && portal.BotID != 0:
		log.Warn("the portal's bot was registered through "+portal.API+" and keeps working that way; bitrix.api applies at the next register",
			"bitrix.api", cfg.Bitrix.API)
	}
	var caller delivery.Caller
	if cfg.DryRun() {
		log.Warn("dry-run (bitrix.no_portal): no portal is configured, so calls to Bitrix24 are logged, not sent")
		caller = bitrix24.NewDryRun(log)
	} else {
		opts := []bitrix24.Option{
			bitrix24.WithLogger(log),
			bitrix24.WithLimiter(bitrix24.NewLimiter(cfg.Bitrix.RatePerSecond, cfg.Bitrix.Burst)),
			bitrix24.WithObserver(m),
		}
		// The CLIENT_ID the bot was registered with: configured, or made by register.
		if clientID := cmp.Or(cfg.Bitrix.ClientID, portal.ClientID); clientID != "" {
			opts = append(opts, bitrix24.WithClientID(clientID))
		}
		caller = bitrix24.NewClient(cfg.Bitrix.WebhookURL, opts...)
	}
	auth := portals.Webhook{PortalID: portal.ID, Token: cfg.Bitrix.ApplicationToken, Refusals: &portals.Refusals{Store: store}}
	switch {
	case cfg.Bitrix.ApplicationToken == "" && cfg.DryRun():
		log.Warn("dry-run without bitrix.application_token: events are accepted without a token check")
		auth.Open = true
	case cfg.Bitrix.ApplicationToken == "":
		// Fetch mode: events come from the portal's queue; anything posted is refused.
		log.Info("no bitrix.application_token: events posted to /bitrix/events are refused")
	}
	return auth, delivery.Single(caller), nil
}

// Serve runs the bot until ctx ends, then shuts down gracefully: it stops taking
// events, lets requests in flight finish, stops the dispatcher and closes the
// database. If started is not nil, it receives the listening address.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger, started chan<- string) error {
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	defer ln.Close() // if assembling fails; Shutdown closes it otherwise
	// No portal configured: the local portal, on this listener, whose address it needs.
	var local *localportal.Portal
	if cfg.DryRun() && cfg.Bitrix.NoPortal != "dry-run" {
		if local, cfg, err = openLocal(cfg, ln.Addr(), log); err != nil {
			return err
		}
		defer local.Close()
	}
	h, err := assemble(ctx, cfg, log, local)
	if err != nil {
		return err
	}
	defer h.store.Close()
	srv := handlers.HTTPServer(cfg.HTTP.Addr, h.handler)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	db := cfg.DB.Path
	if cfg.DB.URL != "" {
		db = "PostgreSQL" // the URL may hold a password
	}
	log.Info("listening", "addr", ln.Addr().String(), "db", db, "local_portal", local != nil)
	if started != nil {
		started <- ln.Addr().String()
	}

	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	callsCtx, abortCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer abortCalls()
	var wg sync.WaitGroup
	wg.Go(func() { h.dispatcher.Run(dispatchCtx, callsCtx) })
	wg.Go(func() { h.poller.Run(dispatchCtx) })
	wg.Go(func() { schedule.Run(dispatchCtx, log, onOneReplica(h.store, h.jobs)...) })
	if local != nil {
		wg.Go(func() { installLocal(dispatchCtx, local, log) })
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	dispatched := make(chan struct{})
	go func() { wg.Wait(); close(dispatched) }()
	// The dispatcher takes no new work but finishes the calls under way, within the
	// grace period; calls still running then are abandoned and their entries stay
	// pending for the next start.
	stopDispatching := sync.OnceFunc(func() {
		stopDispatch()
		select {
		case <-dispatched:
		case <-shutdownCtx.Done():
			log.Warn("calls to Bitrix24 still under way at the deadline: abandoned; they are sent again on the next start")
			abortCalls()
			<-dispatched
		}
	})
	if local != nil {
		// The local portal is served by this very server: the calls under way to it
		// finish before it closes.
		stopDispatching()
	}
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("http shutdown", "err", err)
	}
	stopDispatching()
	log.Info("stopped")
	return runErr
}
