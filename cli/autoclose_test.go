package cli

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"supportbot/config"
)

// TestAutoCloseSweepKeepsTheTimes: serve sweeps for auto-close at a tenth of the
// shortest period it must keep (the silence before the warning, the warning), so
// "warned after 10 s, closed 10 s later" is not a minute late; the defaults keep the
// sweep once a minute; periods under ten seconds, which a sweep at most once a second
// could not keep, are refused at start.
func TestAutoCloseSweepKeepsTheTimes(t *testing.T) {
	for _, c := range []struct {
		after, warning string
		want           time.Duration
	}{
		{"20s", "10s", time.Second},
		{"10s", "0", time.Second},
		{"5m", "1m", 6 * time.Second},
		{"2h", "1h", time.Minute},
		{"", "", time.Minute}, // the defaults: 72 h, 24 h
		{"0", "", time.Minute},
	} {
		env := []string{"SUPPORTBOT_DB_PATH=" + filepath.Join(t.TempDir(), "sweep.db"), "SUPPORTBOT_ACCESS_ADMINS=1", "SUPPORTBOT_BITRIX_NO_PORTAL=dry-run",
			"SUPPORTBOT_DIALOGS_AUTO_CLOSE_AFTER=" + c.after, "SUPPORTBOT_DIALOGS_AUTO_CLOSE_WARNING=" + c.warning}
		cfg, err := config.LoadFrom(nil, env)
		if err != nil {
			t.Fatalf("after %q, warning %q: %v", c.after, c.warning, err)
		}
		h, err := assemble(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		h.store.Close()
		for _, j := range h.jobs {
			if j.Name == "auto-close" && j.Every != c.want {
				t.Errorf("after %q, warning %q: swept every %v, want %v", c.after, c.warning, j.Every, c.want)
			}
		}
	}
	for _, c := range []struct{ after, warning, want string }{
		{"10s", "5s", "dialogs.auto_close_warning is 5s: it must be 0 (no warning) or at least 10s"},
		{"15s", "10s", "(the silence before the warning) is 5s: it must be at least 10s"},
		{"9s", "0", "(the silence before the warning) is 9s"},
	} {
		_, err := config.LoadFrom(nil, []string{"SUPPORTBOT_DB_PATH=" + filepath.Join(t.TempDir(), "x.db"),
			"SUPPORTBOT_DIALOGS_AUTO_CLOSE_AFTER=" + c.after, "SUPPORTBOT_DIALOGS_AUTO_CLOSE_WARNING=" + c.warning})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("after %s, warning %s: %v, want %q", c.after, c.warning, err, c.want)
		}
	}
}
