package portals

// Exports only the tests (package portals_test) use.

// CachedTokens is how many answers about tokens are kept.
func (a *App) CachedTokens() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.tokens)
}
