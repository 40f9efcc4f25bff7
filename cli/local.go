package cli

import (
	"context"
	"log/slog"
	"net"
	"time"

	"supportbot/bitrix24/b24test"
	"supportbot/config"
	"supportbot/localportal"
)

// openLocal starts the local portal when no portal is configured, served on the
// bot's own listener at addr, and returns the configuration that runs the bot
// against it as an application installed there (imbot.v2, fetch mode, the sidebar).
// The configuration's role lists are not used: the portal's people are seeded.
func openLocal(cfg *config.Config, addr net.Addr, log *slog.Logger) (*localportal.Portal, *config.Config, error) {
	base := localportal.BaseURL(addr)
	if cfg.HTTP.PublicURL != "" {
		base = cfg.HTTP.PublicURL
	}
	lp, err := localportal.Open(localportal.StatePath(cfg.DB.Path), base, log)
	if err != nil {
		return nil, nil, err
	}
	local := *cfg
	local.App.ClientID, local.App.ClientSecret, local.App.OAuthURL = localportal.ClientID, lp.ClientSecret(), lp.OAuthURL()
	local.HTTP.PublicURL, local.Bitrix.API, local.Bitrix.Events = lp.Base(), "v2", "fetch"
	if len(cfg.Support.Agents)+len(cfg.Access.Admins)+len(cfg.Access.Integrators) > 0 {
		log.Warn("local portal: support.agents, access.admins and access.integrators are not used; the local portal's people have their roles")
	}
	local.Support.Agents, local.Access.Admins, local.Access.Integrators = nil, nil, nil
	if ip, ok := addr.(*net.TCPAddr); ok && !ip.IP.IsLoopback() {
		log.Warn("local portal: the messenger page is reachable beyond this machine, and anyone who reaches it may act as any of its people: "+
			"set http.addr to 127.0.0.1:8080 to keep the trial to yourself", "addr", addr.String())
	}
	log.Info("local trial: no Bitrix24 portal is configured (bitrix.webhook_url, app.client_id), so the bot runs against a local portal inside this process: open "+lp.Base(),
		"state", localportal.StatePath(cfg.DB.Path))
	return lp, &local, nil
}

// installLocal has the local portal install the application once the server
// answers, as an administrator installing it would; it tries a few times.
func installLocal(ctx context.Context, lp *localportal.Portal, log *slog.Logger) {
	const tries = 5
	post := func(url string, body []byte) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		status, _, err := b24test.Post(ctx, url, body)
		return status, err
	}
	for i := range tries {
		err := lp.Install(post, lp.Base()+"/bitrix/events")
		if err == nil {
			return
		}
		log.Warn("local portal: the application is not installed yet", "try", i+1, "of", tries, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(i+1) * time.Second):
		}
	}
	log.Error("local portal: the application could not be installed: restart to try again")
}
