package cli

import (
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"supportbot/bitrix24"
	"supportbot/setup"
)

func doctorCommand(r *run) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration, the database, the webhook and the bot, and say what to fix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &setup.Doctor{Config: r.cfg, ConfigErr: r.cfgErr, Out: cmd.OutOrStdout()}
			if r.cfg != nil && r.cfg.Bitrix.WebhookURL != "" {
				d.Client = setup.Patient(bitrix24.NewClient(r.cfg.Bitrix.WebhookURL, bitrix24.WithHTTPClient(&http.Client{Timeout: 15 * time.Second})))
			}
			if !d.Run(r.ctx) {
				return setup.ErrFailed
			}
			return nil
		},
	}
}
