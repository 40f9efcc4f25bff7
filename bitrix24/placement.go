package bitrix24

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
)

// An application's page in the portal's interface (a placement, "widget"): the
// portal binds it with placement.bind and, when a user opens it, posts to its
// handler who is looking and where (api-reference/widgets/im/sidebar.md).

// PlacementIMSidebar is the item of the messenger's chat sidebar.
const PlacementIMSidebar = "IM_SIDEBAR"

// Placement is what the portal posts to a placement's handler when a user opens
// it: DOMAIN, PROTOCOL, LANG and APP_SID in the query, the rest in the form body.
// Nothing in it is proof of anything by itself: APPLICATION_TOKEN says which
// application's page it is, and only the portal can say whose AUTH_ID it is.
type Placement struct {
	Domain string // the portal's domain as the frame knows it: "xxx.bitrix24.com"
	HTTPS  bool   // PROTOCOL=1
	Lang   string // the viewer's interface language: "ru", "en", "de"…
	AppSID string
	AuthID string // the viewer's access token: a secret, never logged
	// AuthExpires is how many seconds AuthID lives.
	AuthExpires      int64
	RefreshID        string // a secret, never logged
	ServerEndpoint   string
	ApplicationToken string // the application's token on the portal: a secret
	Scope            string
	MemberID         string
	Status           string
	Placement        string // "IM_SIDEBAR"
	Options          PlacementOptions
}

// PlacementOptions is PLACEMENT_OPTIONS of IM_SIDEBAR, a JSON string:
// {"dialogId":"chat2","URI":"/online/"}.
type PlacementOptions struct {
	// Chat is the chat whose sidebar is open: "chatN", or in a private chat the
	// other party's user ID; "" when the portal sent none that looks like one.
	Chat string `json:"dialogId"`
	URI  string `json:"URI"`
}

// LogValue keeps the secrets out of structured logs.
func (p Placement) LogValue() slog.Value {
	return slog.GroupValue(slog.String("domain", p.Domain), slog.String("member_id", p.MemberID),
		slog.String("placement", p.Placement), slog.String("dialog_id", p.Options.Chat))
}

// Lengths beyond which a placement's field is not believed to be Bitrix24's: the
// handler bounds the body, these bound what one field may claim.
const (
	maxPlacementField   = 512
	maxPlacementOptions = 4096
)

var (
	chatPattern   = regexp.MustCompile(`^(chat)?[1-9][0-9]{0,18}$`)
	domainPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$`)
)

// DecodePlacement reads a placement's opening: the query string and the form body.
// Errors wrap ErrMalformed.
func DecodePlacement(query, body []byte) (Placement, error) {
	q, err := ParseForm(query)
	if err != nil {
		return Placement{}, fmt.Errorf("placement query: %w", err)
	}
	f, err := ParseForm(body)
	if err != nil {
		return Placement{}, fmt.Errorf("placement body: %w", err)
	}
	var bad []string
	field := func(src Form, key string, limit int) string {
		if _, group := src[key].(Form); group {
			bad = append(bad, key)
			return ""
		}
		s := src.String(key)
		if len(s) > limit {
			bad = append(bad, key)
			return ""
		}
		return s
	}
	p := Placement{
		Domain:           strings.ToLower(field(q, "DOMAIN", maxPlacementField)),
		HTTPS:            field(q, "PROTOCOL", maxPlacementField) == "1",
		Lang:             strings.ToLower(field(q, "LANG", maxPlacementField)),
		AppSID:           field(q, "APP_SID", maxPlacementField),
		AuthID:           field(f, "AUTH_ID", maxPlacementField),
		RefreshID:        field(f, "REFRESH_ID", maxPlacementField),
		ServerEndpoint:   field(f, "SERVER_ENDPOINT", maxPlacementField),
		ApplicationToken: field(f, "APPLICATION_TOKEN", maxPlacementField),
		Scope:            field(f, "APPLICATION_SCOPE", maxPlacementField),
		MemberID:         field(f, "member_id", maxPlacementField),
		Status:           field(f, "status", maxPlacementField),
		Placement:        field(f, "PLACEMENT", maxPlacementField),
	}
	if s := field(f, "AUTH_EXPIRES", maxPlacementField); s != "" {
		if p.AuthExpires, err = strconv.ParseInt(s, 10, 64); err != nil || p.AuthExpires < 0 {
			bad = append(bad, "AUTH_EXPIRES")
		}
	}
	if raw := field(f, "PLACEMENT_OPTIONS", maxPlacementOptions); raw != "" {
		if json.Unmarshal([]byte(raw), &p.Options) != nil {
			bad = append(bad, "PLACEMENT_OPTIONS")
		}
	}
	if len(bad) > 0 {
		return Placement{}, fmt.Errorf("%w: placement fields %s", ErrMalformed, strings.Join(bad, ", "))
	}
	if !chatPattern.MatchString(p.Options.Chat) {
		p.Options.Chat = ""
	}
	if !domainPattern.MatchString(p.Domain) {
		p.Domain = ""
	}
	if len(p.Options.URI) > maxPlacementField {
		p.Options.URI = ""
	}
	return p, nil
}

// Origin is the portal's origin as the placement claims it, "https://xxx.bitrix24.com",
// or "" when it names no valid domain. Only a portal the bot knows is to be trusted
// with more than a refusal.
func (p Placement) Origin() string {
	if p.Domain == "" {
		return ""
	}
	if p.HTTPS {
		return "https://" + p.Domain
	}
	return "http://" + p.Domain
}
