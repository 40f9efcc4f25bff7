package cli

import (
	"errors"
	"strings"
	"testing"

	"supportbot/config"
)

const testWebhook = "https://example.bitrix24.ru/rest/1/secretcode123456"

func TestExceptMissingToken(t *testing.T) {
	// Only the token is missing: the set-up commands may go on, with the configuration read.
	c, err := config.LoadFrom(nil, []string{"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + testWebhook})
	if err := exceptMissingToken(err); err != nil {
		t.Fatalf("only the token is missing, got %v", err)
	}
	if c == nil || c.Bitrix.WebhookURL != testWebhook+"/" {
		t.Fatalf("configuration not read: %+v", c)
	}
	// Another problem besides: it stays, the token's does not.
	_, err = config.LoadFrom(nil, []string{"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + testWebhook, "SUPPORTBOT_DIALOGS_MAX_ACTIVE=0"})
	err = exceptMissingToken(err)
	if err == nil || !strings.Contains(err.Error(), "dialogs.max_active") || errors.Is(err, config.ErrTokenRequired) {
		t.Fatalf("got %v, want only the max_active problem", err)
	}
	if exceptMissingToken(nil) != nil {
		t.Fatal("nil in, error out")
	}
}
