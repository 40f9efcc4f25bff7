package portals

import (
	"context"
	"errors"
	"testing"

	"supportbot/bitrix24"
)

func TestTokenMatches(t *testing.T) {
	tests := []struct {
		got, want string
		ok        bool
	}{
		{"831c76b092f9f135d9b6b36c3a720757", "831c76b092f9f135d9b6b36c3a720757", true},
		{"831c76b092f9f135d9b66c3a720757", "831c76b092f9f135d9b6b36c3a720757", false},
		{"831c76b092f9f135d9b6b36c3a720758", "831c76b092f9f135d9b6b36c3a720757", false},
		{"", "831c76b092f9f135d9b6b36c3a720757", false},
		{"", "", false},
		{"anything", "", false},
	}
	for _, tt := range tests {
		if got := tokenMatches(tt.got, tt.want); got != tt.ok {
			t.Errorf("tokenMatches(%q, %q) = %v", tt.got, tt.want, got)
		}
	}
}

// TestWebhookAuthenticate: only the top-level token counts, and an open (dry-run)
// authenticator takes everything for its one portal.
func TestWebhookAuthenticate(t *testing.T) {
	ev := &bitrix24.MessageAdd{Envelope: bitrix24.Envelope{Auth: bitrix24.Auth{ApplicationToken: "right"}}}
	w := Webhook{PortalID: 3, Token: "right"}
	if o, err := w.Authenticate(context.Background(), ev); err != nil || o.PortalID != 3 || o.Admin != 0 {
		t.Fatalf("genuine: %+v %v", o, err)
	}
	ev.Auth.ApplicationToken = "wrong"
	if _, err := w.Authenticate(context.Background(), ev); !errors.Is(err, bitrix24.ErrNotGenuine) {
		t.Fatalf("wrong token: %v", err)
	}
	if o, err := (Webhook{PortalID: 3, Open: true}).Authenticate(context.Background(), ev); err != nil || o.PortalID != 3 {
		t.Fatalf("open: %+v %v", o, err)
	}
}
