// Command supportbot is a Bitrix24 chat bot that turns the messenger into a support
// desk with parallel dialogs. See README.md.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/config"
	"supportbot/delivery"
	"supportbot/handlers"
	"supportbot/metrics"
	"supportbot/portals"
	"supportbot/setup"
	"supportbot/storage"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// shutdownGrace bounds how long a stop by signal may take.
const shutdownGrace = 10 * time.Second

// gcPercent is the garbage collector's target when GOGC is not set. The live heap
// is small (tens of MiB) and every event allocates its decoded form, so trading a
// little memory for fewer collections buys intake throughput.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd(ctx, os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "supportbot:", err)
		os.Exit(1)
	}
}

// newRootCmd builds the CLI. With no subcommand it serves.
func newRootCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "supportbot",
		Short:         "Bitrix24 support bot with parallel dialogs",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	config.BindFlags(root.PersistentFlags())
	root.SetOut(stdout)
	root.SetErr(stderr)
	serveCmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (the default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			return serve(ctx, cfg, newLogger(cfg, stderr), nil)
		},
	}
	root.RunE = serveCmd.RunE
	setupCmd := func(use, short string, run func(context.Context, *setup.Setup) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := config.Load(cmd.Flags())
				if err = config.ExceptMissingToken(err); err != nil {
					return err
				}
				s, closeStore, err := newSetup(ctx, cfg, cmd.OutOrStdout(), newLogger(cfg, stderr))
				if err != nil {
					return err
				}
				defer closeStore()
				if err := run(ctx, s); err != nil {
					return fmt.Errorf("%s: %s", use, setup.Explain(err))
				}
				return nil
			},
		}
	}
	root.AddCommand(serveCmd,
		setupCmd("register", "Register the bot and its commands on the portal (again: update them)",
			func(ctx context.Context, s *setup.Setup) error { return s.Register(ctx) }),
		setupCmd("unregister", "Remove the bot and its commands from the portal",
			func(ctx context.Context, s *setup.Setup) error { return s.Unregister(ctx) }),
		&cobra.Command{
			Use:   "doctor",
			Short: "Check the configuration, the database, the webhook and the bot, and say what to fix",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, cfgErr := config.Load(cmd.Flags())
				d := &setup.Doctor{Config: cfg, ConfigErr: cfgErr, Out: cmd.OutOrStdout()}
				if cfg != nil && cfg.Bitrix.WebhookURL != "" {
					d.Client = setup.Patient(bitrix24.NewClient(cfg.Bitrix.WebhookURL, bitrix24.WithHTTPClient(&http.Client{Timeout: 15 * time.Second})))
				}
				if !d.Run(ctx) {
					return setup.ErrFailed
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "token",
			Short: "Print the application token of the portal's events (webhook set-up)",
			Long: "After `supportbot register`, Bitrix24 signs every event with an application token that it never shows.\n" +
				"Stop the server and run this: it prints a one-time code and listens on http.addr. Write the code to the bot\n" +
				"in Bitrix24: the token of that message is printed here (not logged), to put into bitrix.application_token.",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := config.Load(cmd.Flags())
				if cfg == nil {
					return err
				}
				return captureToken(ctx, cfg.HTTP.Addr, cfg.Bitrix.WebhookURL, cmd.OutOrStdout())
			},
		},
		&cobra.Command{
			Use:   "healthcheck",
			Short: "Exit 0 if the server on http.addr answers /healthz (for container health checks)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := config.Load(cmd.Flags())
				if err != nil {
					return err
				}
				return healthcheck(ctx, cfg.HTTP.Addr)
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintln(cmd.OutOrStdout(), versionString())
			},
		})
	return root
}

// newSetup prepares register/unregister: webhook mode only, with a public URL.
func newSetup(ctx context.Context, cfg *config.Config, out io.Writer, log *slog.Logger) (*setup.Setup, func(), error) {
	switch {
	case cfg.AppMode():
		return nil, nil, errors.New("in app mode the bot is registered when a portal installs the application; nothing to do here")
	case cfg.DryRun():
		return nil, nil, errors.New("bitrix.webhook_url is not set: create an inbound webhook with the imbot scope in Bitrix24 and configure it")
	case cfg.HTTP.PublicURL == "":
		return nil, nil, errors.New("http.public_url is not set: Bitrix24 needs the address to post events to")
	}
	store, err := storage.Open(ctx, cfg.DB.Path)
	if err != nil {
		return nil, nil, err
	}
	portal, err := store.EnsurePortal(ctx, setup.WebhookMemberID(cfg), "")
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	if cfg.Bitrix.BotID != 0 {
		portal.BotID = cfg.Bitrix.BotID
	}
	client := bitrix24.NewClient(cfg.Bitrix.WebhookURL, bitrix24.WithLogger(log),
		bitrix24.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		bitrix24.WithLimiter(bitrix24.NewLimiter(cfg.Bitrix.RatePerSecond, cfg.Bitrix.Burst)))
	s := &setup.Setup{
		Store:  store,
		Portal: portal,
		Client: setup.Patient(client),
		Profile: bot.Profile{
			Code: cfg.Bot.Code, Name: cfg.Bot.Name, Color: cfg.Bot.Color,
			HandlerURL: setup.HandlerURL(cfg), ClientID: cfg.Bitrix.ClientID,
		},
		Out: out,
	}
	return s, func() { store.Close() }, nil
}

// captureToken serves /bitrix/events until the event the operator makes arrives, and
// prints the portal and the application token it carries. The public URL is no
// secret, so the first POST could be anyone's: only a message holding a one-time
// code printed here (and, with a webhook configured, from the webhook's portal)
// counts.
func captureToken(ctx context.Context, addr, webhookURL string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is the server still running?): %w", addr, err)
	}
	code := oneTimeCode()
	var portalHost string
	if u, err := url.Parse(webhookURL); err == nil {
		portalHost = u.Hostname()
	}
	fmt.Fprintf(out, "waiting on %s: write this code to the bot in Bitrix24: %s\n", ln.Addr(), code)
	found := make(chan bitrix24.Auth, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, handlers.MaxEventBody))
		if r.Method != http.MethodPost || err != nil {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		ev, err := bitrix24.Decode(body)
		if err != nil || ev.Head().Auth.ApplicationToken == "" {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		msg, ok := ev.(*bitrix24.MessageAdd)
		auth := ev.Head().Auth
		if !ok || !strings.Contains(msg.Message.Text, code) ||
			(portalHost != "" && !strings.EqualFold(hostOnly(auth.Domain), portalHost)) {
			w.WriteHeader(http.StatusOK) // not the one; say nothing
			return
		}
		select {
		case found <- auth:
		default:
		}
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case a := <-found:
		fmt.Fprintf(out, "event from %s (member_id %s)\napplication token: %s\n", a.Domain, a.MemberID, a.ApplicationToken)
		fmt.Fprintln(out, "set bitrix.application_token to it (SUPPORTBOT_BITRIX_APPLICATION_TOKEN) and start the server")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// oneTimeCode is six random digits.
func oneTimeCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// hostOnly drops a port from an auth[domain].
func hostOnly(domain string) string {
	if h, _, err := net.SplitHostPort(domain); err == nil {
		return h
	}
	return domain
}

// healthcheck asks the local server for /healthz.
func healthcheck(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not healthy: HTTP %d", resp.StatusCode)
	}
	return nil
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	return fmt.Sprintf("supportbot %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the bot until ctx ends, then shuts down gracefully: it stops taking
// events, lets requests in flight finish, stops the dispatcher and closes the
// database. If started is not nil, it receives the listening address.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, started chan<- string) error {
	log.Info("starting", "version", versionString(), "config", cfg)
	store, err := storage.Open(ctx, cfg.DB.Path)
	if err != nil {
		return err
	}
	defer store.Close()

	m := metrics.New(store)
	botCfg := bot.Config{
		Agents:      cfg.Support.Agents,
		Admins:      cfg.Access.Admins,
		Integrators: cfg.Access.Integrators,
		FreePlan:    cfg.FreePlan(),
		MaxActive:   cfg.Dialogs.MaxActive,
		Language:    cfg.Bot.Language,
		Profile:     bot.Profile{Code: cfg.Bot.Code, Name: cfg.Bot.Name, Color: cfg.Bot.Color, HandlerURL: setup.HandlerURL(cfg)},
	}
	var callers func(int64) (delivery.Caller, error)
	var auth handlers.Authenticator
	var prepare func(context.Context, int64, bitrix24.Event)
	if cfg.AppMode() {
		// Every portal that installs the application gets its own tokens, rate
		// limit and bot; events are told apart by their member_id.
		conns := portals.NewConnections(store, portals.App{ClientID: cfg.App.ClientID, ClientSecret: cfg.App.ClientSecret,
			OAuthURL: cfg.App.OAuthURL}, cfg.Bitrix.RatePerSecond, cfg.Bitrix.Burst, log, m)
		callers = func(portalID int64) (delivery.Caller, error) { return conns.Client(context.Background(), portalID) }
		auth = &portals.AppAuth{Store: store, App: portals.App{ClientID: cfg.App.ClientID, ClientSecret: cfg.App.ClientSecret,
			OAuthURL: cfg.App.OAuthURL}, Connections: conns, Log: log}
		admins := &portals.Admins{Connections: conns, Log: log}
		prepare, botCfg.IsAdmin = admins.Resolve, admins.IsAdmin
		log.Info("app mode: portals install the application", "client_id", cfg.App.ClientID)
	} else {
		portal, err := store.EnsurePortal(ctx, setup.WebhookMemberID(cfg), "")
		if err != nil {
			return err
		}
		if cfg.Bitrix.BotID != 0 && cfg.Bitrix.BotID != portal.BotID {
			if err := store.Update(ctx, func(tx *storage.Tx) error { return tx.SetBotID(portal.ID, cfg.Bitrix.BotID) }); err != nil {
				return err
			}
		}
		var caller delivery.Caller
		if cfg.DryRun() {
			log.Warn("dry-run: bitrix.webhook_url is not set, so calls to Bitrix24 are logged, not sent")
			caller = delivery.NewDryRun(log)
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
		callers = delivery.Single(caller)
		webhook := handlers.WebhookPortal{PortalID: portal.ID, Token: cfg.Bitrix.ApplicationToken}
		if cfg.Bitrix.ApplicationToken == "" {
			log.Warn("dry-run without bitrix.application_token: events are accepted without a token check")
			webhook.Open = true
		}
		auth = webhook
	}

	brain := bot.New(botCfg, log)
	dispatcher := delivery.New(store, callers, log, m)
	e := handlers.NewServer(handlers.Routes{
		Events:      &handlers.Events{Store: store, Bot: brain, Auth: auth, Log: log, Observe: m.ObserveEvent, Prepare: prepare},
		DB:          store,
		Log:         log,
		Metrics:     m.Handler(),
		ObserveHTTP: m.ObserveHTTP,
	})

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	srv := handlers.HTTPServer(cfg.HTTP.Addr, e)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "db", cfg.DB.Path, "dry_run", cfg.DryRun())
	if started != nil {
		started <- ln.Addr().String()
	}

	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	callsCtx, abortCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer abortCalls()
	var wg sync.WaitGroup
	wg.Go(func() { dispatcher.Run(dispatchCtx, callsCtx) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("http shutdown", "err", err)
	}
	// The dispatcher takes no new work but finishes the calls under way, within the
	// grace period; calls still running then are abandoned and their entries stay
	// pending for the next start.
	stopDispatch()
	dispatched := make(chan struct{})
	go func() { wg.Wait(); close(dispatched) }()
	select {
	case <-dispatched:
	case <-shutdownCtx.Done():
		log.Warn("calls to Bitrix24 still under way at the deadline: abandoned; they are sent again on the next start")
		abortCalls()
		<-dispatched
	}
	log.Info("stopped")
	return runErr
}
