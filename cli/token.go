package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"supportbot/bitrix24"
	"supportbot/handlers"
)

func tokenCommand(r *run) *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print the application token of the portal's events (webhook set-up)",
		Long: "After `supportbot register`, Bitrix24 signs every event with an application token that it never shows.\n" +
			"Stop the server and run this: it prints a one-time code and listens on http.addr. Write the code to the bot\n" +
			"in Bitrix24: the token of that message is printed here (not logged), to put into bitrix.application_token.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if r.cfg == nil {
				return r.cfgErr
			}
			if !r.cfg.AppMode() && !r.cfg.Pushed() {
				// No event is ever posted in fetch mode: waiting for one would be for ever.
				fmt.Fprintln(cmd.OutOrStdout(), "not needed: in fetch mode (imbot.v2, bitrix.events fetch) the bot fetches its events "+
					"from the portal and no event carries an application token; leave bitrix.application_token empty")
				return nil
			}
			return captureToken(r.ctx, r.cfg.HTTP.Addr, r.cfg.Bitrix.WebhookURL, cmd.OutOrStdout())
		},
	}
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
