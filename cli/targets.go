package cli

import (
	"context"
	"log/slog"
	"time"

	"supportbot/bot"
	"supportbot/config"
	"supportbot/schedule"
	"supportbot/storage"
	"supportbot/workhours"
)

// workingHours is support.hours in support.timezone; Validate has refused a bad one,
// so an error here (none) would leave support always open.
func workingHours(cfg *config.Config) *workhours.Schedule {
	h, _ := cfg.WorkingHours()
	return h
}

// targetsJob sweeps the response targets' steps that are due (README, "Owners and
// response targets"). Like auto-close it runs on one replica, and each step is claimed
// in the transaction that queues its message, so even two sweeps act once.
func targetsJob(brain *bot.Bot, store *storage.Store, log *slog.Logger) schedule.Job {
	return schedule.Job{Name: "response targets", Every: time.Minute, Run: func(ctx context.Context) error {
		reminded, missed, err := brain.ResponseTargets(ctx, store)
		if reminded+missed > 0 {
			log.Info("response targets", "reminded", reminded, "missed", missed)
		}
		return err
	}}
}
