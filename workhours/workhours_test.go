package workhours

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, hours, zone string) *Schedule {
	t.Helper()
	s, err := Parse(hours, zone)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", hours, zone, err)
	}
	return s
}

// at is a wall-clock time in zone: "2026-12-04 17:55".
func at(t testing.TB, zone, s string) time.Time {
	t.Helper()
	loc, err := LoadZone(zone)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	moscow = "Europe/Moscow"
	berlin = "Europe/Berlin"
	// A Russian office: the New Year holidays, then a weekend.
	office = "Mon-Fri 09:00-18:00; holidays 2026-12-31..2027-01-08"
	// Two ranges a day, a night shift across midnight from Friday to Saturday.
	shifts  = "Mon-Fri 09:00-13:00, 14:00-18:00; Fri 22:00-24:00; Sat 00:00-02:00"
	always  = "Mon-Sun 00:00-24:00"
	sundays = "Sun 01:00-04:00"
)

func TestOpenAndNextOpen(t *testing.T) {
	for _, c := range []struct {
		name, hours, zone, at string
		open                  bool
		next                  string // "" = at itself
	}{
		{"monday morning", office, moscow, "2026-12-07 10:00", true, ""},
		{"opens at the start", office, moscow, "2026-12-07 09:00", true, ""},
		{"closed at the end", office, moscow, "2026-12-07 18:00", false, "2026-12-08 09:00"},
		{"before opening", office, moscow, "2026-12-07 08:59", false, "2026-12-07 09:00"},
		{"after midnight", office, moscow, "2026-12-08 00:30", false, "2026-12-08 09:00"},
		{"friday evening to monday", office, moscow, "2026-12-04 17:55", true, ""},
		{"weekend", office, moscow, "2026-12-05 12:00", false, "2026-12-07 09:00"},
		{"holidays then a weekend", office, moscow, "2026-12-30 19:00", false, "2027-01-11 09:00"},
		{"inside the holidays", office, moscow, "2027-01-05 12:00", false, "2027-01-11 09:00"},
		{"lunch break", shifts, "UTC", "2026-12-07 13:30", false, "2026-12-07 14:00"},
		{"night shift before midnight", shifts, "UTC", "2026-12-04 23:59", true, ""},
		{"night shift after midnight", shifts, "UTC", "2026-12-05 00:00", true, ""},
		{"after the night shift", shifts, "UTC", "2026-12-05 02:00", false, "2026-12-07 09:00"},
		{"always open in Berlin", always, berlin, "2026-03-29 02:30", true, ""},
		{"berlin summer time starts", sundays, berlin, "2026-03-29 00:30", false, "2026-03-29 01:00"},
		{"berlin fall back", sundays, berlin, "2026-10-25 04:30", false, "2026-11-01 01:00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.hours, c.zone)
			tt := at(t, c.zone, c.at)
			if got := s.Open(tt); got != c.open {
				t.Errorf("Open = %v", got)
			}
			want := tt
			if c.next != "" {
				want = at(t, c.zone, c.next)
			}
			if got := s.NextOpen(tt); !got.Equal(want) {
				t.Errorf("NextOpen = %v, want %v", got.In(s.Location()), want)
			}
		})
	}
}

// TestSkippedHour: a range inside the hour that a spring change skips does not exist
// that day, and the next one is a week later.
func TestSkippedHour(t *testing.T) {
	s := mustParse(t, "Sun 02:00-03:00", berlin)
	from := at(t, berlin, "2026-03-28 12:00")
	if got, want := s.NextOpen(from), at(t, berlin, "2026-04-05 02:00"); !got.Equal(want) {
		t.Fatalf("NextOpen = %v, want %v", got, want)
	}
	if got := s.Between(from, at(t, berlin, "2026-03-30 00:00")); got != 0 {
		t.Fatalf("Between = %v", got)
	}
}

func TestBetweenAndAdd(t *testing.T) {
	for _, c := range []struct {
		name, hours, zone, from, to string
		work                        time.Duration
	}{
		{"same range", office, moscow, "2026-12-07 10:00", "2026-12-07 12:30", 150 * time.Minute},
		{"across midnight", office, moscow, "2026-12-07 17:00", "2026-12-08 10:00", 2 * time.Hour},
		{"over a weekend", office, moscow, "2026-12-04 17:55", "2026-12-07 09:05", 10 * time.Minute},
		{"a whole week", office, moscow, "2026-12-07 09:00", "2026-12-11 18:00", 45 * time.Hour},
		{"over the new year holidays", office, moscow, "2026-12-30 17:00", "2027-01-11 10:00", 2 * time.Hour},
		{"over a lunch break", shifts, "UTC", "2026-12-07 12:30", "2026-12-07 14:30", time.Hour},
		{"a night shift across midnight", shifts, "UTC", "2026-12-04 23:00", "2026-12-05 01:00", 2 * time.Hour},
		{"friday noon to monday morning", shifts, "UTC", "2026-12-04 12:00", "2026-12-07 10:00", 1*time.Hour + 4*time.Hour + 4*time.Hour + time.Hour},
		// Daylight-saving changes: a day of wall-clock hours is 23 or 25 real ones.
		{"berlin spring day", always, berlin, "2026-03-28 12:00", "2026-03-29 12:00", 23 * time.Hour},
		{"berlin autumn day", always, berlin, "2026-10-24 12:00", "2026-10-25 12:00", 25 * time.Hour},
		{"berlin night range, spring", sundays, berlin, "2026-03-29 00:00", "2026-03-29 05:00", 2 * time.Hour},
		{"berlin night range, autumn", sundays, berlin, "2026-10-25 00:00", "2026-10-25 05:00", 4 * time.Hour},
		{"berlin office week over the change", office, berlin, "2026-10-23 17:00", "2026-10-26 10:00", 2 * time.Hour},
		// Moscow has had no changes since 2014; before, it had summer time.
		{"moscow today", always, moscow, "2026-03-28 12:00", "2026-03-29 12:00", 24 * time.Hour},
		{"moscow 2010 autumn", always, moscow, "2010-10-30 12:00", "2010-10-31 12:00", 25 * time.Hour},
		{"moscow 2011 spring", always, moscow, "2011-03-26 12:00", "2011-03-27 12:00", 23 * time.Hour},
		{"moscow 2014 move to +3", always, moscow, "2014-10-25 12:00", "2014-10-26 12:00", 25 * time.Hour},
		{"moscow office over the 2010 change", office, moscow, "2010-10-29 17:00", "2010-11-01 10:00", 2 * time.Hour},
		{"always open", "", "", "2026-12-04 17:55", "2026-12-07 09:05", 63*time.Hour + 10*time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.hours, c.zone)
			a, b := at(t, c.zone, c.from), at(t, c.zone, c.to)
			if got := s.Between(a, b); got != c.work {
				t.Errorf("Between = %v, want %v", got, c.work)
			}
			if got := s.Between(b, a); got != 0 {
				t.Errorf("Between backwards = %v", got)
			}
			// Add undoes Between when b is open (or is the end of an open range).
			if got := s.Add(a, c.work); s.Between(a, got) != c.work || got.After(b) {
				t.Errorf("Add(%v) = %v (past %v or not that much work)", c.work, got, b)
			}
		})
	}
}

func TestAdd(t *testing.T) {
	for _, c := range []struct {
		name, hours, zone, from string
		work                    time.Duration
		want                    string
	}{
		{"friday evening", office, moscow, "2026-12-04 17:55", 10 * time.Minute, "2026-12-07 09:05"},
		{"from a closed time", office, moscow, "2026-12-05 12:00", time.Hour, "2026-12-07 10:00"},
		{"exactly to the end", office, moscow, "2026-12-07 17:00", time.Hour, "2026-12-07 18:00"},
		{"over the holidays", office, moscow, "2026-12-30 17:30", time.Hour, "2027-01-11 09:30"},
		{"zero is now", office, moscow, "2026-12-05 12:00", 0, "2026-12-05 12:00"},
		{"berlin fall back", always, berlin, "2026-10-25 00:00", 3 * time.Hour, "2026-10-25 02:00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.hours, c.zone)
			got := s.Add(at(t, c.zone, c.from), c.work)
			if want := at(t, c.zone, c.want); !got.Equal(want) {
				t.Errorf("Add = %v, want %v", got.In(s.Location()), want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		hours, zone string
		err         string // "" = valid
	}{
		{"", "", ""},
		{" ; \n ", "UTC", ""},
		{"mon-fri 9:00-18:00", "UTC", ""},
		{"Monday, Wednesday 09:00 - 12:00 , 13:00-17:30\nFri-Mon 10:00-11:00", "Asia/Tokyo", ""},
		{"Mon-Fri 09:00-18:00; HOLIDAYS 2027-01-01, 2027-05-01..2027-05-03", "UTC", ""},
		{"Mon-Fri 09:00-18:00", "Europe/Mosow", `time zone "Europe/Mosow": unknown`},
		{"Mon-Fri 09:00-18:00", "Local", "not the machine's"},
		{"Mon-Fri", "", `clause 1 "Mon-Fri": no hours`},
		{"09:00-18:00", "", "no days before the hours"},
		{"Mon-Fre 09:00-18:00", "", `day "Fre": not one of`},
		{"Mon-Fri 9-18", "", `range "9-18": time "9": write HH:MM`},
		{"Mon-Fri 09:00", "", `range "09:00": write HH:MM-HH:MM`},
		{"Mon-Fri 09:00-25:00", "", `time "25:00": out of range`},
		{"Mon-Fri 09:60-10:00", "", `time "09:60": out of range`},
		{"Mon-Fri 24:00-24:00", "", "24:00 can only end a range"},
		{"Fri 22:00-06:00", "", "cannot cross midnight"},
		{"Mon-Fri 09:00-18:00; Sat 10:00-14:00; Sun +1:00-2:00", "", `clause 3`},
		{"holidays 2027-01-01", "", "no day has hours"},
		{"Mon 09:00-18:00; holidays", "", "no dates"},
		{"Mon 09:00-18:00; holidays 2027-02-30", "", `date "2027-02-30": write YYYY-MM-DD`},
		{"Mon 09:00-18:00; holidays 2027-05-03..2027-05-01", "", "ends before it starts"},
		{"Mon 09:00-18:00; holidays 2027-01-01..2029-01-01", "", "at most 366 in one range"},
		{"Mon 09:00-18:00" + strings.Repeat(" ", maxText), "", "bytes, at most"},
	} {
		t.Run(c.hours, func(t *testing.T) {
			_, err := Parse(c.hours, c.zone)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("error: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one with %q", err, c.err)
			case c.err != "" && c.zone == "" && !errors.Is(err, ErrSyntax):
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
		})
	}
}

// TestAlwaysOpen: empty hours stop no clock.
func TestAlwaysOpen(t *testing.T) {
	s := mustParse(t, "", "Europe/Berlin")
	if !s.AlwaysOpen() {
		t.Fatal("empty hours are not always open")
	}
	now := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	if !s.Open(now) || !s.NextOpen(now).Equal(now) || !s.Add(now, time.Hour).Equal(now.Add(time.Hour)) {
		t.Fatal("an always-open schedule stopped a clock")
	}
	if mustParse(t, "Mon 09:00-10:00", "").AlwaysOpen() {
		t.Fatal("hours parsed as always open")
	}
}

// FuzzParse: no text panics the parser, and whatever parses keeps the arithmetic's
// promises: Add undoes Between, NextOpen is open, and nothing runs backwards.
func FuzzParse(f *testing.F) {
	for _, s := range []string{office, shifts, always, sundays, "", "Fri-Mon 00:00-00:01", "holidays 2027-01-01", "Sun 02:00-03:00"} {
		f.Add(s, int64(1796000000), uint32(3600))
	}
	zones := []*time.Location{time.UTC, mustZone(f, berlin), mustZone(f, moscow)}
	f.Fuzz(func(t *testing.T, hours string, unix int64, work uint32) {
		for _, loc := range zones {
			s, err := Parse(hours, loc.String())
			if err != nil {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("error %v does not wrap ErrSyntax", err)
				}
				return
			}
			a := time.Unix(unix%(1<<35), 0)
			w := time.Duration(work) * time.Second
			b := s.Add(a, w)
			if b.Before(a) || s.Between(a, b) != w {
				t.Fatalf("Add(%v, %v) = %v, Between = %v", a, w, b, s.Between(a, b))
			}
			if n := s.NextOpen(a); n.Before(a) || !s.Open(n) {
				t.Fatalf("NextOpen(%v) = %v, open %v", a, n, s.Open(n))
			}
		}
	})
}

func mustZone(t testing.TB, name string) *time.Location {
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
