package bot

import (
	"testing"
	"time"
)

// TestSpan: the configured durations read as people write them, with Russian's three
// plural forms (in the accusative both sentences need: «через 1 минуту»).
func TestSpan(t *testing.T) {
	for _, c := range []struct {
		d      time.Duration
		en, ru string
	}{
		{72 * time.Hour, "3 days", "3 дня"},
		{24 * time.Hour, "24 hours", "24 часа"},
		{120 * time.Hour, "5 days", "5 дней"},
		{21 * 24 * time.Hour, "21 days", "21 день"},
		{time.Hour, "1 hour", "1 час"},
		{11 * time.Hour, "11 hours", "11 часов"},
		{22 * time.Hour, "22 hours", "22 часа"},
		{90 * time.Minute, "90 minutes", "90 минут"},
		{time.Minute, "1 minute", "1 минуту"},
		{2 * time.Minute, "2 minutes", "2 минуты"},
		{10 * time.Second, "10 seconds", "10 секунд"},
		{time.Second, "1 second", "1 секунду"},
		{22 * time.Second, "22 seconds", "22 секунды"},
		{90 * time.Second, "90 seconds", "90 секунд"},
		{61 * time.Minute, "61 minutes", "61 минуту"},
	} {
		if got := textsEN.Span(c.d); got != c.en {
			t.Errorf("en %v: %q, want %q", c.d, got, c.en)
		}
		if got := textsRU.Span(c.d); got != c.ru {
			t.Errorf("ru %v: %q, want %q", c.d, got, c.ru)
		}
	}
}
