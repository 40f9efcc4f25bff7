package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/config"
	"supportbot/setup"
	"supportbot/storage"
)

func registerCommand(r *run) *cobra.Command {
	cmd := setupCommand(r, "register", "Register the bot and its commands on the portal (again: update them)", (*setup.Setup).Register)
	cmd.Flags().BoolVar(&r.rotateToken, "rotate-token", false, "give the imbot.v2 bot a new token (the old one stops working at once)")
	return cmd
}

func unregisterCommand(r *run) *cobra.Command {
	return setupCommand(r, "unregister", "Remove the bot and its commands from the portal", (*setup.Setup).Unregister)
}

// setupCommand runs one set-up step on the webhook's portal. The application token
// may be missing: the portal only reveals it in events sent after registration.
func setupCommand(r *run, use, short string, step func(*setup.Setup, context.Context) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := exceptMissingToken(r.cfgErr); err != nil {
				return err
			}
			s, closeStore, err := newSetup(r, cmd)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := step(s, r.ctx); err != nil {
				return fmt.Errorf("%s: %s", use, setup.Explain(err))
			}
			return nil
		},
	}
}

// newSetup prepares register/unregister: webhook mode only, with a public URL.
func newSetup(r *run, cmd *cobra.Command) (*setup.Setup, func(), error) {
	cfg := r.cfg
	switch {
	case cfg.AppMode():
		return nil, nil, errors.New("in app mode the bot is registered when a portal installs the application; nothing to do here")
	case cfg.DryRun():
		return nil, nil, errors.New("bitrix.webhook_url is not set: create an inbound webhook with the imbot scope in Bitrix24 and configure it")
	case cfg.HTTP.PublicURL == "" && (cfg.Bitrix.API == storage.APIv1 || cfg.Bitrix.Events == storage.EventsHook):
		return nil, nil, errors.New("http.public_url is not set: Bitrix24 needs the address to post events to " +
			"(with bitrix.api v2 and bitrix.events fetch it needs none)")
	}
	store, err := storage.Open(r.ctx, cmp.Or(cfg.DB.URL, cfg.DB.Path))
	if err != nil {
		return nil, nil, err
	}
	portal, err := store.EnsurePortal(r.ctx, cfg.WebhookMemberID(), "")
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	portal.BotID = cmp.Or(cfg.Bitrix.BotID, portal.BotID)
	// A v2 bot's token: the one stored, or a new one for a new bot (or on request).
	var newToken string
	if portal.BotToken == "" {
		portal.BotToken = setup.NewBotToken()
	}
	if r.rotateToken {
		newToken = setup.NewBotToken()
	}
	client := bitrix24.NewClient(cfg.Bitrix.WebhookURL, bitrix24.WithLogger(r.logger()),
		bitrix24.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		bitrix24.WithLimiter(bitrix24.NewLimiter(cfg.Bitrix.RatePerSecond, cfg.Bitrix.Burst)))
	s := &setup.Setup{
		API:      cfg.Bitrix.API,
		NewToken: newToken,
		Store:    store,
		Portal:   portal,
		Client:   setup.Patient(client),
		Profile: bitrix24.BotProfile{
			Code: cfg.Bot.Code, Name: cfg.Bot.Name, Color: cfg.Bot.Color, WorkPosition: bot.WorkPosition(cfg.Bot.Language),
			HandlerURL: cfg.HandlerURL(), ClientID: cfg.Bitrix.ClientID, EventMode: cfg.Bitrix.Events,
		},
		Out: cmd.OutOrStdout(),
	}
	return s, func() { store.Close() }, nil
}

// exceptMissingToken returns err without config.ErrTokenRequired, for the set-up commands:
// the portal reveals the application token only in the events it sends once the bot
// is registered, so `register` must run before the token can be configured.
func exceptMissingToken(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok { // errors.Join, maybe nested
		var rest []error
		for _, e := range j.Unwrap() {
			rest = append(rest, exceptMissingToken(e))
		}
		return errors.Join(rest...) // which drops the nils
	}
	if err == config.ErrTokenRequired {
		return nil
	}
	return err
}
