package bitrix24

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Questions to the portal that the set-up and the installation check ask directly,
// not through the outbox.

// Scopes lists the scopes of the webhook or application the caller uses.
func Scopes(ctx context.Context, c Caller) ([]string, error) {
	raw, err := c.Call(ctx, "scope", nil)
	if err != nil {
		return nil, err
	}
	var scopes []string
	if err := json.Unmarshal(raw, &scopes); err != nil {
		return nil, fmt.Errorf("bitrix24 scope: unexpected answer %s", truncate(string(raw)))
	}
	return scopes, nil
}

// RegisteredBot is one of the application's bots on the portal.
type RegisteredBot struct {
	ID   int64
	Code string
	Name string
}

// Bots lists the application's bots on the portal, by ID.
func Bots(ctx context.Context, c Caller) ([]RegisteredBot, error) {
	raw, err := c.Call(ctx, "imbot.bot.list", nil)
	if err != nil {
		return nil, err
	}
	byID, err := phpArray(raw)
	if err != nil {
		return nil, fmt.Errorf("bitrix24 imbot.bot.list: unexpected answer: %w", err)
	}
	var out []RegisteredBot
	for key, entry := range byID {
		var b struct {
			ID   json.Number `json:"ID"`
			Code string      `json:"CODE"`
			Name string      `json:"NAME"`
		}
		if err := json.Unmarshal(entry, &b); err != nil {
			return nil, fmt.Errorf("bitrix24 imbot.bot.list: unexpected entry: %w", err)
		}
		id, err := b.ID.Int64()
		if err != nil {
			id, _ = strconv.ParseInt(key, 10, 64)
		}
		out = append(out, RegisteredBot{ID: id, Code: b.Code, Name: b.Name})
	}
	slices.SortFunc(out, func(a, b RegisteredBot) int { return int(a.ID - b.ID) })
	return out, nil
}

// IsAdmin asks whether the user whose token the caller holds administers the portal.
func IsAdmin(ctx context.Context, c Caller) (bool, error) {
	raw, err := c.Call(ctx, "user.admin", nil)
	if err != nil {
		return false, err
	}
	return string(raw) == "true", nil
}

// CurrentUser asks who the user whose token the caller holds is (user.current):
// with the AUTH_ID a page was opened with, the user looking at it.
func CurrentUser(ctx context.Context, c Caller) (User, error) {
	raw, err := c.Call(ctx, "user.current", nil)
	if err != nil {
		return User{}, err
	}
	var u struct {
		ID       json.Number `json:"ID"`
		Name     string      `json:"NAME"`
		LastName string      `json:"LAST_NAME"`
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return User{}, fmt.Errorf("bitrix24 user.current: unexpected answer %s", truncate(string(raw)))
	}
	id, err := u.ID.Int64()
	if err != nil || id <= 0 {
		return User{}, fmt.Errorf("bitrix24 user.current: no user ID in %s", truncate(string(raw)))
	}
	return User{ID: id, FirstName: u.Name, LastName: u.LastName,
		Name: strings.TrimSpace(u.Name + " " + u.LastName)}, nil
}
