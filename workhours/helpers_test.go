package workhours

// Exports only the tests use.

// AlwaysOpen says whether the clocks never stop.
func (s *Schedule) AlwaysOpen() bool { return s == nil }
