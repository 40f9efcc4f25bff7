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

func decodeCurrentUser(raw json.RawMessage) (User, error) {
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

// TokenOwner is what a portal says of a user's access token: whose it is
// (user.current), which application it was issued to (app.info's CODE, the
// application's client_id: api-reference/common/system/app-info.md), and whether its
// user administers the portal (user.admin).
type TokenOwner struct {
	User    User
	AppCode string
	Admin   bool
}

// WhoseToken asks the three questions of TokenOwner in one batch request made with
// the token (one place in the portal's bucket). A refusal of the token (a 401 for
// the batch, or for one of its commands) is the *Error the portal sent.
func WhoseToken(ctx context.Context, c *Client) (TokenOwner, error) {
	results, err := c.Batch(ctx, []BatchCommand{
		{Key: "user", Method: "user.current"}, {Key: "app", Method: "app.info"}, {Key: "admin", Method: "user.admin"},
	}, false)
	if err != nil {
		return TokenOwner{}, err
	}
	for _, r := range results {
		if r.Err != nil {
			return TokenOwner{}, r.Err
		}
	}
	var owner TokenOwner
	if owner.User, err = decodeCurrentUser(results[0].Result); err != nil {
		return TokenOwner{}, err
	}
	if owner.AppCode, err = decodeAppCode(results[1].Result); err != nil {
		return TokenOwner{}, err
	}
	owner.Admin = string(results[2].Result) == "true"
	return owner, nil
}

// AppCode asks app.info which application the caller's token is issued to: its CODE,
// the application's client_id.
func AppCode(ctx context.Context, c Caller) (string, error) {
	raw, err := c.Call(ctx, "app.info", nil)
	if err != nil {
		return "", err
	}
	return decodeAppCode(raw)
}

func decodeAppCode(raw json.RawMessage) (string, error) {
	var app struct {
		Code string `json:"CODE"`
	}
	if err := json.Unmarshal(raw, &app); err != nil || app.Code == "" {
		return "", fmt.Errorf("bitrix24 app.info: no CODE in %s", truncate(string(raw)))
	}
	return app.Code, nil
}
