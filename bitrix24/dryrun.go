package bitrix24

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync/atomic"
)

// DryRun is the Caller used when no portal is configured: every call is logged and
// answered as a portal would, with made-up IDs, so the whole flow (a dialog's chat,
// then the greeting in it) can be watched on a machine with no portal.
type DryRun struct {
	log    *slog.Logger
	nextID atomic.Int64
}

// NewDryRun builds a DryRun caller that logs to log.
func NewDryRun(log *slog.Logger) *DryRun {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DryRun{log: log}
	d.nextID.Store(1000)
	return d
}

// Call implements Caller.
func (d *DryRun) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	raw, err := marshalJSON(params)
	if err != nil {
		return nil, err
	}
	d.log.InfoContext(ctx, "dry-run: not sent", "method", method, "params", string(raw))
	switch method {
	case "imbot.chat.add", "imbot.message.add", "imbot.command.answer", "imbot.register", "imbot.command.register":
		return json.RawMessage(strconv.FormatInt(d.nextID.Add(1), 10)), nil
	case "imbot.chat.get":
		return json.RawMessage("null"), nil
	}
	return json.RawMessage("true"), nil
}

// Batch implements the batch call: each command is logged and answered as by Call.
func (d *DryRun) Batch(ctx context.Context, cmds []BatchCommand, _ bool) ([]BatchResult, error) {
	out := make([]BatchResult, len(cmds))
	for i, c := range cmds {
		out[i].Key = c.Key
		out[i].Result, out[i].Err = d.Call(ctx, c.Method, c.Params)
	}
	return out, nil
}
