// Package workhours measures working time: support's opening hours in one time zone,
// with holidays, and the arithmetic the response targets need (is support open at t,
// when does it open next, how much working time lies between two instants, and when
// has a given amount of it passed). The clocks stop outside the hours, so a question
// asked on Friday at 17:55 has waited five working minutes at 09:00 on Monday.
//
// The hours are written as clauses separated by ";" or new lines:
//
//	Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00; holidays 2027-01-01..2027-01-08, 2027-05-09
//
// There are two kinds of clause:
//
//   - A day clause names days and then ranges. Days are Mon, Tue, Wed, Thu, Fri, Sat,
//     Sun (or the full English names, any case), single or as a range "Mon-Fri"; a range
//     may wrap ("Fri-Mon" is Fri, Sat, Sun, Mon); several are joined by ",". Ranges are
//     "HH:MM-HH:MM" in the zone's wall-clock time, the start before the end, 24:00
//     allowed as an end; several are joined by ",". A range cannot cross midnight:
//     write "Fri 22:00-24:00; Sat 00:00-06:00". A day named in several clauses is open
//     in all of their ranges; days not named are closed.
//   - A holidays clause is the word "holidays" and dates (YYYY-MM-DD) or date ranges
//     ("YYYY-MM-DD..YYYY-MM-DD", both included), joined by ",": closed all day.
//
// An empty text means always open (no clock ever stops). The ranges are wall-clock
// times, so a day whose clocks change is an hour shorter or longer if its hours span
// the change, and a range inside the skipped hour does not exist that day.
package workhours

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"
	// The zones are compiled in: the release image (distroless) has no zoneinfo, and a
	// configured support.timezone must load there as it does on a developer's machine.
	_ "time/tzdata"
)

// Limits that keep a hostile or mistyped configuration cheap to parse and to use.
const (
	maxText         = 4096 // bytes of support.hours
	maxHolidayRange = 366  // days in one "a..b" range
	maxHolidays     = 3660 // holiday days in all
	minutesPerDay   = 24 * 60
)

// A Schedule is support's working time. The nil Schedule, like one parsed from an
// empty text, is always open.
type Schedule struct {
	loc      *time.Location
	week     [7][]span // by time.Weekday; merged, sorted, non-empty spans
	holidays map[civil]bool
}

// span is one day's open range in minutes after midnight, start < end ≤ 24:00.
type span struct{ start, end int }

// civil is a calendar date in the schedule's zone.
type civil struct {
	year  int
	month time.Month
	day   int
}

// ErrSyntax is wrapped by every error Parse returns about the hours' text.
var ErrSyntax = errors.New("invalid working hours")

// LoadZone loads an IANA zone by name ("Europe/Moscow"); empty is UTC. "Local" is
// refused: it would mean whatever the machine is set to.
func LoadZone(name string) (*time.Location, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("time zone %q: name the zone (an IANA name such as Europe/Moscow), not the machine's", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: unknown (an IANA name such as Europe/Moscow or UTC)", name)
	}
	return loc, nil
}

// Parse reads working hours (the syntax is in the package comment) in the zone named
// by timezone. Empty hours give an always-open schedule, returned as nil.
func Parse(hours, timezone string) (*Schedule, error) {
	loc, err := LoadZone(timezone)
	if err != nil {
		return nil, err
	}
	if len(hours) > maxText {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrSyntax, len(hours), maxText)
	}
	s := &Schedule{loc: loc, holidays: map[civil]bool{}}
	clauses := strings.FieldsFunc(hours, func(r rune) bool { return r == ';' || r == '\n' })
	named := false
	for i, c := range clauses {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		named = true
		if err := s.clause(c); err != nil {
			return nil, fmt.Errorf("%w: clause %d %q: %v", ErrSyntax, i+1, c, err)
		}
	}
	if !named {
		return nil, nil
	}
	open := false
	for d := range s.week {
		s.week[d] = merge(s.week[d])
		open = open || len(s.week[d]) > 0
	}
	if !open {
		return nil, fmt.Errorf("%w: no day has hours; name at least one, e.g. \"Mon-Fri 09:00-18:00\"", ErrSyntax)
	}
	return s, nil
}

// clause adds one clause's days and ranges, or holidays.
func (s *Schedule) clause(c string) error {
	if word := strings.Fields(c)[0]; strings.EqualFold(word, "holidays") {
		return s.addHolidays(c[len(word):])
	}
	// Day names have no digits and ranges start with one: the first digit splits them.
	i := strings.IndexAny(c, "0123456789")
	if i < 0 {
		return errors.New(`no hours: write days, then ranges, e.g. "Mon-Fri 09:00-18:00"`)
	}
	days, err := parseDays(squeeze(c[:i]))
	if err != nil {
		return err
	}
	var spans []span
	for r := range strings.SplitSeq(squeeze(c[i:]), ",") {
		sp, err := parseRange(r)
		if err != nil {
			return err
		}
		spans = append(spans, sp)
	}
	for _, d := range days {
		s.week[d] = append(s.week[d], spans...)
	}
	return nil
}

func (s *Schedule) addHolidays(list string) error {
	list = squeeze(list)
	if list == "" {
		return errors.New(`no dates: write "holidays 2027-01-01, 2027-05-01..2027-05-03"`)
	}
	for item := range strings.SplitSeq(list, ",") {
		from, to, isRange := strings.Cut(item, "..")
		a, err := parseDate(from)
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = parseDate(to); err != nil {
				return err
			}
		}
		if b.Before(a) {
			return fmt.Errorf("holidays %q: the range ends before it starts", item)
		}
		n := int(b.Sub(a).Hours()/24) + 1
		if n > maxHolidayRange {
			return fmt.Errorf("holidays %q: %d days, at most %d in one range", item, n, maxHolidayRange)
		}
		for d := range n {
			t := a.AddDate(0, 0, d)
			s.holidays[civil{t.Year(), t.Month(), t.Day()}] = true
		}
		if len(s.holidays) > maxHolidays {
			return fmt.Errorf("more than %d holidays", maxHolidays)
		}
	}
	return nil
}

// squeeze removes white space, which is free everywhere inside a clause.
func squeeze(s string) string {
	return strings.Join(strings.Fields(s), "")
}

var dayNames = map[string]time.Weekday{
	"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
	"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
	"monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday, "sunday": time.Sunday,
}

func parseDay(s string) (time.Weekday, error) {
	d, ok := dayNames[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("day %q: not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun", s)
	}
	return d, nil
}

func parseDays(s string) ([]time.Weekday, error) {
	if s == "" {
		return nil, errors.New(`no days before the hours: e.g. "Mon-Fri 09:00-18:00"`)
	}
	var days []time.Weekday
	for item := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(item, "-")
		a, err := parseDay(from)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return nil, err
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			days = append(days, d)
			if d == b {
				break
			}
		}
	}
	return days, nil
}

func parseRange(s string) (span, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return span{}, fmt.Errorf("range %q: write HH:MM-HH:MM", s)
	}
	a, err := parseClock(from)
	if err != nil {
		return span{}, fmt.Errorf("range %q: %v", s, err)
	}
	b, err := parseClock(to)
	if err != nil {
		return span{}, fmt.Errorf("range %q: %v", s, err)
	}
	if a == minutesPerDay {
		return span{}, fmt.Errorf("range %q: 24:00 can only end a range", s)
	}
	if b <= a {
		return span{}, fmt.Errorf("range %q: the end must be after the start; a range cannot cross midnight (write 22:00-24:00 and 00:00-06:00 on the next day)", s)
	}
	return span{a, b}, nil
}

// parseClock reads "HH:MM" (or "H:MM") into minutes after midnight; 24:00 is allowed.
func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || hh == "" || len(hh) > 2 || len(mm) != 2 {
		return 0, fmt.Errorf("time %q: write HH:MM", s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || hh[0] == '+' || hh[0] == '-' || mm[0] == '+' || mm[0] == '-' {
		return 0, fmt.Errorf("time %q: write HH:MM", s)
	}
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: out of range 00:00-24:00", s)
	}
	return h*60 + m, nil
}

func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: write YYYY-MM-DD", s)
	}
	return t, nil
}

// merge sorts spans and joins those that overlap or touch.
func merge(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	var out []span
	for _, sp := range spans {
		if n := len(out); n > 0 && sp.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// Location is the schedule's zone (UTC for an always-open one).
func (s *Schedule) Location() *time.Location {
	if s == nil {
		return time.UTC
	}
	return s.loc
}

// intervals yields the open intervals [start, end) that end after from, in order,
// as absolute instants; the start of the first may lie before from. Intervals of one
// day never reach into the next, so the walk starts at from's own date. It stops
// after two weeks plus the holidays without an open interval, which only a schedule
// with no open day could reach (Parse refuses those); two weeks, not one, because a
// day's only range may fall into an hour that a clock change skips.
func (s *Schedule) intervals(from time.Time) iter.Seq2[time.Time, time.Time] {
	return func(yield func(time.Time, time.Time) bool) {
		local := from.In(s.loc)
		y, m, d := local.Date()
		idle := 0
		for idle <= 15+len(s.holidays) {
			day := time.Date(y, m, d, 0, 0, 0, 0, s.loc)
			y, m, d = day.Date() // normalised
			spans := s.week[day.Weekday()]
			if s.holidays[civil{y, m, d}] {
				spans = nil
			}
			found := false
			for _, sp := range spans {
				a := time.Date(y, m, d, sp.start/60, sp.start%60, 0, 0, s.loc)
				b := time.Date(y, m, d, sp.end/60, sp.end%60, 0, 0, s.loc)
				if !b.After(a) || !b.After(from) {
					continue // a range inside a skipped hour, or already over
				}
				found = true
				if !yield(a, b) {
					return
				}
			}
			if found {
				idle = 0
			} else {
				idle++
			}
			d++
		}
	}
}

// Open says whether support is open at t.
func (s *Schedule) Open(t time.Time) bool {
	if s == nil {
		return true
	}
	for a := range s.intervals(t) {
		return !a.After(t)
	}
	return false
}

// NextOpen is t if support is open at t, else the instant it opens next. The same
// value for every instant of a closed period, so it names the period.
func (s *Schedule) NextOpen(t time.Time) time.Time {
	if s == nil {
		return t
	}
	for a := range s.intervals(t) {
		if a.After(t) {
			return a
		}
		return t
	}
	return t // unreachable for a parsed schedule
}

// Between is the working time in [a, b); zero if b is not after a.
func (s *Schedule) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	if s == nil {
		return b.Sub(a)
	}
	var sum time.Duration
	for x, y := range s.intervals(a) {
		if !x.Before(b) {
			break
		}
		sum += minTime(y, b).Sub(maxTime(x, a))
	}
	return sum
}

// Add is the instant at which w of working time has passed since a: a itself for
// w ≤ 0, and otherwise an instant inside (or at the end of) an open interval.
func (s *Schedule) Add(a time.Time, w time.Duration) time.Time {
	if w <= 0 {
		return a
	}
	if s == nil {
		return a.Add(w)
	}
	for x, y := range s.intervals(a) {
		x = maxTime(x, a)
		if left := y.Sub(x); w <= left {
			return x.Add(w)
		} else {
			w -= left
		}
	}
	return a // unreachable for a parsed schedule
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
