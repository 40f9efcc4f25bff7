package bot

import (
	"supportbot/bitrix24"
	"supportbot/storage"
)

// Arrival is a decoded event as its source vouched for it: the portal it comes from
// and, where the portal confirmed it before the transaction, the author as one of
// its administrators (app mode: user.admin with the author's own token; a fetched
// event: the installer, see portals.FetchedAdmin), or 0.
type Arrival struct {
	PortalID int64
	Event    bitrix24.Event
	Admin    int64
}

// Take is the one intake of an event, whichever way it came: the webhook route, the
// job that applies the posted events kept until the portal confirmed their author,
// and the fetch poller all call it inside the transaction that commits the event
// (and, fetched, the offset that confirms it). What happens before (reading,
// decoding, authenticating) differs by source; from here on nothing does.
//
// It lives in bot, not in a package of its own, because every caller already may
// import bot and nothing else they share (handlers imports bot, storage, portals;
// poller imports bitrix24, storage, bot) and it needs only bot and storage: one
// more package would be one more room each event crosses.
func (b *Bot) Take(tx *storage.Tx, a Arrival) (Outcome, error) {
	if _, unknown := a.Event.(*bitrix24.Unknown); unknown {
		return Unknown, nil // acknowledged (or confirmed with its page) and ignored
	}
	// Read in the transaction: an earlier event in it (a fetched page) may have
	// changed the portal, a deleted bot for one.
	portal, err := tx.Portal(a.PortalID)
	if err != nil {
		return 0, err
	}
	return b.process(tx, portal, a.Event, a.Admin)
}

// Outcome says what became of an event: Take's answer, and what the sources add
// before or after it. Logs, the webhook's answers and the events metric name it by
// String.
type Outcome int

// Outcomes of an event. Take returns the first four.
const (
	Processed Outcome = iota
	Duplicate
	Ignored // known, but with nothing to key it by
	Unknown // a type the bot does not handle
	Rejected
	Failed
	Kept    // posted in app mode; its author is checked again later
	GivenUp // kept, and its author never confirmed while their token lived
)

// String is the outcome as logs, answers and metrics name it.
func (o Outcome) String() string {
	return [...]string{Processed: "processed", Duplicate: "duplicate", Ignored: "ignored", Unknown: "unknown",
		Rejected: "rejected", Failed: "failed", Kept: "kept", GivenUp: "given_up"}[o]
}
