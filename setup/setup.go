// Package setup is what an operator runs once: registering the bot and its commands
// on a portal through the inbound webhook, removing them, and checking that every
// piece of an installation works (doctor).
package setup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"supportbot/backoff"
	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/storage"
)

// Caller is the REST client of the portal.
type Caller = bitrix24.Caller

// Setup registers and unregisters the bot of one portal (webhook mode).
type Setup struct {
	Store   *storage.Store
	Portal  storage.Portal
	Client  Caller
	Profile bitrix24.BotProfile // ClientID may be empty: then the stored one, or a new one, is used
	Out     io.Writer
	// API is the chat-bot API to register through: "v2" (imbot.v2) or "v1". What a
	// bot was registered with is unregistered the same way, whatever API says.
	API string
	// NewToken, if set, replaces an existing v2 bot's token (Portal.BotToken is the
	// current one, or the one a new bot is registered with).
	NewToken string
}

// do performs one set-up action on the portal, through the API being registered with.
func (s *Setup) do(ctx context.Context, a bitrix24.Action) (int64, error) {
	return bitrix24.Perform(ctx, s.Client, bitrix24.WireFor(s.API), a, bitrix24.Context{BotID: s.Portal.BotID, BotToken: s.Portal.BotToken})
}

// ErrNoImbotScope: the webhook was created without the imbot scope.
var ErrNoImbotScope = errors.New("the webhook lacks the imbot scope")

func (s *Setup) printf(format string, args ...any) { fmt.Fprintf(s.Out, format+"\n", args...) }

// Register registers the bot and its commands, or updates them when they are
// registered already, so running it twice leaves one bot and one set of commands.
func (s *Setup) Register(ctx context.Context) error {
	if err := CheckScope(ctx, s.Client); err != nil {
		return err
	}
	if s.API == storage.APIv2 {
		if err := s.registerBotV2(ctx); err != nil {
			return err
		}
		return s.registerCommands(ctx)
	}
	if s.Profile.ClientID == "" {
		s.Profile.ClientID = s.Portal.ClientID
	}
	if s.Profile.ClientID == "" {
		s.Profile.ClientID = newClientID()
		if err := s.Store.Update(ctx, func(tx *storage.Tx) error { return tx.SetClientID(s.Portal.ID, s.Profile.ClientID) }); err != nil {
			return err
		}
		s.printf("generated CLIENT_ID %s (stored in the database); put it into bitrix.client_id too: "+
			"only this CLIENT_ID may update or remove the bot, should the database be lost", s.Profile.ClientID)
	}

	botID, err := s.existingBot(ctx)
	if err != nil {
		return err
	}
	if botID != 0 {
		if _, err := s.do(ctx, bitrix24.UpdateBot{BotID: botID, Profile: s.Profile}); err != nil {
			return fmt.Errorf("update bot %d: %w", botID, err)
		}
		s.printf("updated bot %q (ID %d): events go to %s", s.Profile.Code, botID, s.Profile.HandlerURL)
	} else {
		if botID, err = s.do(ctx, bitrix24.RegisterBot{Profile: s.Profile}); err != nil {
			return fmt.Errorf("register bot: %w", err)
		}
		if botID == 0 {
			return errors.New("register bot: the portal answered no bot ID")
		}
		s.printf("registered bot %q (ID %d): events go to %s", s.Profile.Code, botID, s.Profile.HandlerURL)
	}
	err = s.Store.Update(ctx, func(tx *storage.Tx) error {
		if err := tx.SetBotID(s.Portal.ID, botID); err != nil {
			return err
		}
		return tx.SetAPI(s.Portal.ID, storage.APIv1)
	})
	if err != nil {
		return err
	}
	s.Portal.BotID = botID
	return s.registerCommands(ctx)
}

// registerCommands registers the bot's commands, or updates those registered before.
func (s *Setup) registerCommands(ctx context.Context) error {
	stored, err := s.Store.Commands(ctx, s.Portal.ID)
	if err != nil {
		return err
	}
	for _, c := range bot.Commands() {
		if id, ok := stored[c.Name]; ok {
			_, err := s.do(ctx, bitrix24.UpdateCommand{CommandID: id, Command: c, HandlerURL: s.Profile.HandlerURL, ClientID: s.Profile.ClientID})
			if err == nil {
				s.printf("updated command /%s (ID %d)", c.Name, id)
				continue
			}
			var be *bitrix24.Error
			if !errors.As(err, &be) || be.Temporary() {
				return fmt.Errorf("update command /%s: %w", c.Name, err)
			}
			// Gone from the portal (removed by hand, or with a former bot): register anew.
		}
		id, err := s.do(ctx, bitrix24.RegisterCommand{Command: c, HandlerURL: s.Profile.HandlerURL, ClientID: s.Profile.ClientID})
		if errors.Is(err, errCommandExists) {
			// The portal has it and this database does not (a lost or new database):
			// find it and update it.
			id, err = s.recoverCommand(ctx, c)
		}
		if err != nil {
			return fmt.Errorf("register command /%s: %w", c.Name, err)
		}
		if id == 0 {
			return fmt.Errorf("register command /%s: the portal answered no command ID", c.Name)
		}
		if err := s.Store.Update(ctx, func(tx *storage.Tx) error { return tx.SetCommand(s.Portal.ID, c.Name, id) }); err != nil {
			return err
		}
		s.printf("registered command /%s (ID %d)", c.Name, id)
	}
	s.printf("done: write to the bot in Bitrix24; if the bot does not answer, run `supportbot doctor`")
	return nil
}

// existingBot finds the bot registered before: the one the database knows, if the
// portal still has it, else one with our CODE.
func (s *Setup) existingBot(ctx context.Context) (int64, error) {
	bots, err := bitrix24.Bots(ctx, s.Client)
	if err != nil {
		return 0, fmt.Errorf("list bots: %w", err)
	}
	if s.Portal.BotID != 0 && !s.Portal.BotDeleted() {
		for _, b := range bots {
			if b.ID == s.Portal.BotID {
				return b.ID, nil
			}
		}
	}
	for _, b := range bots {
		if b.Code == s.Profile.Code {
			return b.ID, nil
		}
	}
	return 0, nil
}

var errCommandExists = &bitrix24.Error{Code: "COMMAND_ALREADY_EXISTS"}

// recoverCommand finds a v2 command the portal says exists (Command.list) and
// updates it to what the bot registers, returning its ID.
func (s *Setup) recoverCommand(ctx context.Context, c bitrix24.CommandSpec) (int64, error) {
	have, err := bitrix24.CommandsV2(ctx, s.Client, bitrix24.Context{BotID: s.Portal.BotID, BotToken: s.Portal.BotToken})
	if err != nil {
		return 0, err
	}
	id := have[c.Name]
	if id == 0 {
		return 0, fmt.Errorf("the portal says /%s exists but does not list it", c.Name)
	}
	if _, err := s.do(ctx, bitrix24.UpdateCommand{CommandID: id, Command: c, HandlerURL: s.Profile.HandlerURL, ClientID: s.Profile.ClientID}); err != nil {
		return 0, err
	}
	s.printf("found command /%s (ID %d) registered before, and updated it", c.Name, id)
	return id, nil
}

// Unregister removes the bot's commands and the bot.
func (s *Setup) Unregister(ctx context.Context) error {
	if err := CheckScope(ctx, s.Client); err != nil {
		return err
	}
	clientID := s.Profile.ClientID
	if clientID == "" {
		clientID = s.Portal.ClientID
	}
	s.API = s.Portal.API // removed the way it was registered
	botID, err := s.Portal.BotID, error(nil)
	if s.API != storage.APIv2 {
		botID, err = s.existingBot(ctx)
	}
	if err != nil {
		return err
	}
	stored, err := s.Store.Commands(ctx, s.Portal.ID)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(stored))
	for name := range stored {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := s.do(ctx, bitrix24.UnregisterCommand{CommandID: stored[name], ClientID: clientID}); err != nil && !gone(err) {
			return fmt.Errorf("unregister command /%s: %w", name, err)
		}
		s.printf("removed command /%s", name)
	}
	if botID == 0 {
		s.printf("no bot %q is registered on the portal", s.Profile.Code)
	} else {
		if _, err := s.do(ctx, bitrix24.UnregisterBot{BotID: botID, ClientID: clientID}); err != nil && !gone(err) {
			return fmt.Errorf("unregister bot %d: %w", botID, err)
		}
		s.printf("removed bot %q (ID %d); its dialogs stay in the database", s.Profile.Code, botID)
	}
	return s.Store.Update(ctx, func(tx *storage.Tx) error {
		if err := tx.DeleteCommands(s.Portal.ID); err != nil {
			return err
		}
		if err := tx.SetBotID(s.Portal.ID, 0); err != nil {
			return err
		}
		return tx.SetAPI(s.Portal.ID, storage.APIv1)
	})
}

// gone reports an error that means the thing to remove is not there any more.
func gone(err error) bool {
	var be *bitrix24.Error
	return errors.As(err, &be) && !be.Temporary() &&
		!errors.Is(err, bitrix24.ErrInsufficientScope) && !errors.Is(err, bitrix24.ErrNoAuthFound) &&
		!errors.Is(err, bitrix24.ErrAccessDenied) && !strings.EqualFold(be.Code, codeAppIDError) && be.Code != codeBotOwnership
}

// CheckScope makes sure the webhook may manage bots.
func CheckScope(ctx context.Context, c Caller) error {
	scopes, err := bitrix24.Scopes(ctx, c)
	if err != nil {
		return fmt.Errorf("check the webhook's scope: %w", err)
	}
	if !slices.Contains(scopes, "imbot") {
		return fmt.Errorf("%w (it has: %v)", ErrNoImbotScope, scopes)
	}
	return nil
}

// codeAppIDError: the bot or command belongs to another application — for a webhook,
// another CLIENT_ID. codeBotOwnership and codeCodeTaken are imbot.v2's: another
// botToken.
const (
	codeAppIDError   = "APP_ID_ERROR"
	codeBotOwnership = "BOT_OWNERSHIP_ERROR"
	codeCodeTaken    = "BOT_CODE_ALREADY_TAKEN"
)

// newClientID makes a CLIENT_ID for a bot registered through a webhook: 32 random hex
// digits, like an application's client ID.
func newClientID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Explain turns an error from the portal into what an administrator should do.
func Explain(err error) string {
	var be *bitrix24.Error
	var te *bitrix24.TransportError
	switch {
	case errors.Is(err, ErrNoImbotScope), errors.Is(err, bitrix24.ErrInsufficientScope):
		return "the webhook lacks the imbot scope. In Bitrix24 open Developer resources → Other → Inbound webhook, " +
			"tick \"Chat bots (imbot)\", save, and run the command again"
	case errors.Is(err, bitrix24.ErrNoAuthFound), errors.Is(err, bitrix24.ErrInvalidToken):
		return "the portal did not accept the webhook: check bitrix.webhook_url (https://PORTAL/rest/USER_ID/SECRET/, " +
			"as shown on the webhook's page in Bitrix24)"
	case errors.As(err, &be) && (be.Code == codeBotOwnership || be.Code == codeCodeTaken):
		return "the bot on the portal was registered with another bot token (a lost database?): remove the bot in Bitrix24 " +
			"(or change bot.code) and run `supportbot register` again"
	case errors.As(err, &be) && strings.EqualFold(be.Code, codeAppIDError):
		return "the bot on the portal was registered with another CLIENT_ID (a lost database?): set bitrix.client_id to the one " +
			"`register` printed then, or remove the bot in Bitrix24 and run `supportbot register` again"
	case errors.Is(err, bitrix24.ErrAccessDenied):
		return "the webhook's user may not manage bots: create the webhook as a portal administrator"
	case errors.Is(err, bitrix24.ErrMethodNotFound):
		return "the portal does not know the imbot methods: check that bitrix.webhook_url points at a Bitrix24 portal's REST API"
	case errors.As(err, &te) && te.HTTPStatus == 0:
		return fmt.Sprintf("cannot reach the portal at %s (%v): check bitrix.webhook_url and the network", te.Host, te.Err)
	case errors.As(err, &te):
		return fmt.Sprintf("%s answered HTTP %d, not like a Bitrix24 REST API: check bitrix.webhook_url", te.Host, te.HTTPStatus)
	case errors.As(err, &be):
		return fmt.Sprintf("the portal refused: %s (%s)", be.Code, be.Description)
	}
	return err.Error()
}

// Patient retries the calls a busy portal refuses for now (QUERY_LIMIT_EXCEEDED,
// OPERATION_TIME_LIMIT, a 5xx): a set-up command starts with a fresh rate limiter
// that cannot know the portal's bucket is already full from the server or a run a
// moment ago. Every set-up call is safe to repeat — imbot.register and
// imbot.command.register answer the existing bot or command — so repeating them
// costs nothing. Transport errors are not retried: an unreachable portal should be
// reported at once.
func Patient(c Caller) Caller { return patient{c} }

type patient struct{ Caller }

// patientTries bounds the waiting to about half a minute: 1 s doubling, 31 s in all.
const patientTries = 6

func (p patient) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	for try := 1; ; try++ {
		raw, err := p.Caller.Call(ctx, method, params)
		var be *bitrix24.Error
		if err == nil || try == patientTries || !errors.As(err, &be) || !be.Temporary() ||
			errors.Is(err, bitrix24.ErrOverloadLimit) { // a manual block: waiting minutes is not for a CLI
			return raw, err
		}
		until := time.Now().Add(backoff.Wait(time.Second, time.Minute, try-1))
		if be.ResetAt.After(until) {
			until = be.ResetAt
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Until(until)):
		}
	}
}
