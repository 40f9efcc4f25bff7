// Package schedule runs the bot's periodic work (pruning the database, auto-close),
// each job on its own interval until the context ends. Jobs find what is due from the
// database, so a restart neither skips nor repeats their work.
package schedule

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// A Job is work done every so often.
type Job struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context) error
}

// Run runs each job at once and then every job.Every, until ctx ends; a run that
// fails is logged and the job goes on. It returns when every job has stopped.
func Run(ctx context.Context, log *slog.Logger, jobs ...Job) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			ticker := time.NewTicker(j.Every)
			defer ticker.Stop()
			for {
				if err := j.Run(ctx); err != nil && ctx.Err() == nil {
					log.Error("scheduled work failed; it runs again later", "job", j.Name, "err", err, "every", j.Every)
				}
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
				}
			}
		})
	}
	wg.Wait()
}
