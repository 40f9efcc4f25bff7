package b24test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"supportbot/bitrix24"
)

// maxBatch is Bitrix24's limit of commands in one batch call.
const maxBatch = 50

// runBatch runs the commands in the order the body gives them, as Bitrix24 does
// (settings/how-to-call-rest-api/batch.md), and builds its answer:
// {"result":{…},"result_error":{…},"result_total":[],"result_next":[],"result_time":{…}}.
// Each command is recorded as a Batched call after the batch.
func (p *Portal) runBatch(req *request) any {
	halt := slices.Contains([]string{"1", "true", "y"}, strings.ToLower(strings.TrimSpace(req.params.String("halt"))))
	cmds := req.params.Group("cmd")
	var keys []string
	for _, k := range append(cmdOrder(req), cmds.Keys()...) {
		if _, ok := cmds[k]; ok && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	results, failures, times := &phpArray{}, &phpArray{}, &phpArray{}
	for i, k := range keys {
		if i >= maxBatch {
			// Bitrix24 fails the commands past the limit, not the whole batch.
			failures.set(k, errorBody(&bitrix24.Error{Code: "ERROR_BATCH_LENGTH_EXCEEDED", Description: "Max batch length exceeded"}))
			continue
		}
		start := time.Now()
		if _, query, _ := strings.Cut(cmds.String(k), "?"); p.hangs(formOf(query)) {
			<-req.r.Context().Done() // the whole batch hangs; nothing after it runs
			return nil
		}
		res, err := p.runCommand(req.caller, cmds.String(k))
		if err == ErrNotRun {
			// A portal that runs nothing of the batch and says nothing of it.
			if halt {
				break
			}
			continue
		}
		if err != nil {
			failures.set(k, errorBody(err))
			if halt {
				break
			}
			continue
		}
		results.set(k, res)
		times.set(k, timing(start, start.Add(10*time.Minute)))
	}
	// Built in Bitrix24's key order, which encoding/json would sort away.
	return phpArray{"result", results, "result_error", failures, "result_total", phpArray{}, "result_next", phpArray{},
		"result_time", times}
}

// ErrNotRun is what a method added to the portal (AddMethod) answers inside batch to
// be left out of the answer altogether: neither a result nor an error, as if it had
// not been sent.
var ErrNotRun = &bitrix24.Error{Code: "B24TEST_NOT_RUN"}

// runCommand records and runs one batch command, "METHOD?QUERY".
func (p *Portal) runCommand(c caller, cmd string) (any, *bitrix24.Error) {
	method, query, _ := strings.Cut(cmd, "?")
	params, err := bitrix24.ParseForm([]byte(query))
	switch {
	case method == "":
		return nil, errMethodNotFound
	case err != nil:
		return nil, wrongRequest("INVALID_REQUEST", "Malformed command query")
	case strings.EqualFold(method, "batch"):
		return nil, &bitrix24.Error{Code: "ERROR_BATCH_METHOD_NOT_ALLOWED", Description: "Method is not allowed for batch usage"}
	}
	c.strip(params)
	call := Call{Method: method, Params: params, Batched: true, Auth: c.name(), UserID: c.userID}
	p.record(call)
	if serr := p.checkScope(c, method); serr != nil {
		// Inside a batch Bitrix24 leaves the description empty (batch.md).
		return nil, &bitrix24.Error{Code: serr.Code}
	}
	if _, blocked := p.blockedUntil(method); blocked {
		return nil, errOperationTimeLimit
	}
	return p.dispatch(c, call)
}

// cmdOrder lists the cmd keys of a JSON batch in the order the body gives them:
// Bitrix24 runs commands in that order, and decoding into a map loses it. Keys of a
// JSON list, and of a form body, are left to Form.Keys, which orders them as a list.
func cmdOrder(req *request) []string {
	var top struct{ Cmd json.RawMessage }
	if !isJSON(req.r) || json.Unmarshal(req.body, &top) != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(top.Cmd))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		var skip json.RawMessage
		if err != nil || dec.Decode(&skip) != nil {
			break
		}
		keys = append(keys, tok.(string))
	}
	return keys
}
