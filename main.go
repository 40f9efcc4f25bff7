// Command supportbot is a Bitrix24 chat bot that turns the messenger into a support
// desk with parallel dialogs. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
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
	root.AddCommand(serveCmd, &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
		},
	})
	return root
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

// portalMemberID names the webhook-mode portal by the webhook's host, so pointing
// the bot at another portal never mixes the two portals' dialogs.
func portalMemberID(cfg *config.Config) string {
	if cfg.DryRun() {
		return "dry-run"
	}
	u, err := url.Parse(cfg.Bitrix.WebhookURL)
	if err != nil {
		return "webhook"
	}
	return "webhook:" + u.Host
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

	portal, err := store.EnsurePortal(ctx, portalMemberID(cfg), "")
	if err != nil {
		return err
	}
	if cfg.Bitrix.BotID != 0 && cfg.Bitrix.BotID != portal.BotID {
		if err := store.Update(ctx, func(tx *storage.Tx) error { return tx.SetBotID(portal.ID, cfg.Bitrix.BotID) }); err != nil {
			return err
		}
	}

	m := metrics.New(store)
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
		if cfg.Bitrix.ClientID != "" {
			opts = append(opts, bitrix24.WithClientID(cfg.Bitrix.ClientID))
		}
		caller = bitrix24.NewClient(cfg.Bitrix.WebhookURL, opts...)
	}
	auth := handlers.WebhookPortal{PortalID: portal.ID, Token: cfg.Bitrix.ApplicationToken}
	if cfg.Bitrix.ApplicationToken == "" {
		log.Warn("dry-run without bitrix.application_token: events are accepted without a token check")
		auth.Open = true
	}

	brain := bot.New(bot.Config{
		Agents:      cfg.Support.Agents,
		Admins:      cfg.Access.Admins,
		Integrators: cfg.Access.Integrators,
		FreePlan:    cfg.FreePlan(),
		MaxActive:   cfg.Dialogs.MaxActive,
		Language:    cfg.Bot.Language,
	}, log)
	dispatcher := delivery.New(store, delivery.Single(caller), log, m)
	e := handlers.NewServer(handlers.Routes{
		Events:      &handlers.Events{Store: store, Bot: brain, Auth: auth, Log: log, Observe: m.ObserveEvent},
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
