package setup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// maxBotToken is the longest botToken Bitrix24 takes.
const maxBotToken = 40

// NewBotToken makes a v2 bot's secret: 32 random hex digits. The caller hands it to
// its REST client as a secret before the set-up calls carry it.
func NewBotToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// registerBotV2 registers the bot through imbot.v2, or updates the one registered
// before (rotating its token when asked). The token is a secret: it goes to the
// portal and the database, never to the output.
func (s *Setup) registerBotV2(ctx context.Context) error {
	if s.Portal.API != storage.APIv2 && s.Portal.BotID != 0 && !s.Portal.BotDeleted() {
		return errors.New("the bot is registered through imbot v1: run `supportbot unregister` first, " +
			"then `supportbot register` registers it through imbot.v2 (or set bitrix.api to v1 to keep it)")
	}
	if s.Profile.EventMode == "" {
		s.Profile.EventMode = storage.EventsFetch
	}
	token := s.Portal.BotToken
	if token == "" || len(token) > maxBotToken {
		return errors.New("register: no bot token (the caller makes one with NewBotToken)")
	}
	if err := s.completeRotation(ctx); err != nil {
		return err
	}
	token = s.Portal.BotToken
	botID, err := s.existingBotV2(ctx)
	if err != nil {
		return err
	}
	where := "events are fetched from the portal: no public address needed"
	if s.Profile.EventMode == storage.EventsHook {
		where = "events go to " + s.Profile.HandlerURL
	}
	switch {
	case botID != 0:
		update := bitrix24.UpdateBot{BotID: botID, Profile: s.Profile, NewToken: s.NewToken}
		if update.NewToken != "" {
			// "The old token instantly loses access" (bot-update.md): the new one is
			// stored first, so that a crash before it is recorded as the bot's leaves
			// it known (completeRotation, and the poller, try it).
			if err := s.Store.Update(ctx, func(tx *storage.Tx) error { return tx.SetPendingToken(s.Portal.ID, update.NewToken) }); err != nil {
				return err
			}
		}
		if _, err := s.do(ctx, update); err != nil {
			return fmt.Errorf("update bot %d: %w", botID, err)
		}
		if update.NewToken != "" {
			token = update.NewToken
			s.printf("rotated the bot's token (stored in the database)")
			if s.Profile.EventMode == storage.EventsHook {
				s.printf("in webhook mode the events' application token changes with the bot's token: until " +
					"bitrix.application_token is the new one, every event is refused (401). Stop the server, run " +
					"`supportbot token`, put what it prints into bitrix.application_token and start the server again")
			}
		}
		s.printf("updated bot %q (ID %d, imbot.v2): %s", s.Profile.Code, botID, where)
	default:
		if botID, err = s.do(ctx, bitrix24.RegisterBot{Profile: s.Profile}); err != nil {
			return fmt.Errorf("register bot: %w", err)
		}
		if botID == 0 {
			return errors.New("register bot: the portal answered no bot ID")
		}
		s.printf("registered bot %q (ID %d, imbot.v2): %s", s.Profile.Code, botID, where)
	}
	s.Portal.BotID, s.Portal.BotToken, s.Portal.API = botID, token, storage.APIv2
	return s.Store.Update(ctx, func(tx *storage.Tx) error { return tx.SetBotV2(s.Portal.ID, botID, token, s.Profile.EventMode) })
}

// completeRotation finishes a token rotation a crash interrupted: Bot.update may
// have given the bot the pending token, after which the stored one no longer reaches
// it. If the pending token names the bot, it becomes the bot's.
func (s *Setup) completeRotation(ctx context.Context) error {
	pending := s.Portal.PendingToken
	if pending == "" || pending == s.Portal.BotToken {
		return nil
	}
	bots, err := bitrix24.BotsV2(ctx, s.Client, pending)
	if err != nil {
		return fmt.Errorf("list bots: %w", err)
	}
	if !slices.ContainsFunc(bots, func(b bitrix24.BotV2) bool {
		return (s.Portal.BotID != 0 && b.ID == s.Portal.BotID) || b.Code == s.Profile.Code
	}) {
		return nil // the rotation never reached the portal: the stored token stands
	}
	s.Portal.BotToken = pending
	s.printf("completed a token rotation that was interrupted: the bot has the new token")
	return s.Store.Update(ctx, func(tx *storage.Tx) error {
		return tx.AdoptPendingToken(s.Portal.ID, pending)
	})
}

// existingBotV2 finds the v2 bot registered before with this token: the one the
// database knows, else one with our code.
func (s *Setup) existingBotV2(ctx context.Context) (int64, error) {
	bots, err := bitrix24.BotsV2(ctx, s.Client, s.Portal.BotToken)
	if err != nil {
		return 0, fmt.Errorf("list bots: %w", err)
	}
	for _, want := range []func(bitrix24.BotV2) bool{
		func(b bitrix24.BotV2) bool { return s.Portal.BotID != 0 && b.ID == s.Portal.BotID },
		func(b bitrix24.BotV2) bool { return b.Code == s.Profile.Code },
	} {
		if i := slices.IndexFunc(bots, want); i >= 0 {
			return bots[i].ID, nil
		}
	}
	return 0, nil
}
