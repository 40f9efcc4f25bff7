package bitrix24

import "context"

// Exports only the tests use.

// CurrentUser asks who the user whose token the caller holds is (user.current):
// with the AUTH_ID a page was opened with, the user looking at it.
func CurrentUser(ctx context.Context, c Caller) (User, error) {
	raw, err := c.Call(ctx, "user.current", nil)
	if err != nil {
		return User{}, err
	}
	return decodeCurrentUser(raw)
}
