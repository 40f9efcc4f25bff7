package sidebar

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// Action is what one of the page's forms sent: its token and its fields.
type Action struct {
	Token    string
	Number   int    // the dialog renamed or opened; 0 when the form has none
	Title    string // the pencil's new title
	Question string // Open new's optional question
	// Base is where the page that sent it lives (see View.Base), for the page's script,
	// which puts the answer in place of the page.
	Base string
	// Script: the page's script sent it, to mark a dialog read while BX24 opens its
	// chat: the answer is the page, not a redirect to the chat.
	Script bool
}

// ErrMalformedAction: a body that is no form of the page.
var ErrMalformedAction = errors.New("sidebar: malformed action")

// Limits on what a form may send: the page's fields allow less (the bot refuses a
// title over 255 characters in its own words, so the field may be longer than that).
const (
	MaxQuestion = 10000 // characters
	maxTitle    = 1000
	maxNumber   = 1 << 30
)

// ParseAction reads a form the page posted. Each field may come once; unknown ones
// are ignored. Errors wrap ErrMalformedAction.
func ParseAction(body []byte) (Action, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return Action{}, fmt.Errorf("%w: %v", ErrMalformedAction, err)
	}
	one := func(key string, limit int) (string, error) {
		v := values[key]
		switch {
		case len(v) > 1:
			return "", fmt.Errorf("%w: %s twice", ErrMalformedAction, key)
		case len(v) == 0:
			return "", nil
		case !utf8.ValidString(v[0]) || utf8.RuneCountInString(v[0]) > limit:
			return "", fmt.Errorf("%w: %s", ErrMalformedAction, key)
		}
		return v[0], nil
	}
	var a Action
	var number, script string
	for _, f := range []struct {
		key   string
		limit int
		to    *string
	}{
		{"token", maxToken, &a.Token}, {"number", 12, &number}, {"title", maxTitle, &a.Title},
		{"question", MaxQuestion, &a.Question}, {"base", 16, &a.Base}, {"js", 1, &script},
	} {
		if *f.to, err = one(f.key, f.limit); err != nil {
			return Action{}, err
		}
	}
	if number != "" {
		if a.Number, err = strconv.Atoi(number); err != nil || a.Number <= 0 || a.Number > maxNumber {
			return Action{}, fmt.Errorf("%w: number", ErrMalformedAction)
		}
	}
	if a.Base != "" && a.Base != pageBase {
		return Action{}, fmt.Errorf("%w: base", ErrMalformedAction)
	}
	a.Script = script == "1"
	return a, nil
}
