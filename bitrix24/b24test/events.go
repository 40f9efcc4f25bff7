package b24test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
)

// Drop, as a value given to Event, removes the field (or the whole group) instead of
// setting it.
const Drop = "\x00drop"

// testdataDir is bitrix24/testdata, found from this source file so that Fixture works
// from a test in any package, whatever its working directory.
func testdataDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("b24test: cannot locate the fixtures: runtime.Caller failed")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Fixture returns the raw body of bitrix24/testdata/<name>, e.g.
// "v1/onimbotmessageadd-private.form". It panics when the file is missing: a test
// with a wrong fixture name cannot do anything useful.
func Fixture(name string) []byte {
	b, err := os.ReadFile(filepath.Join(testdataDir(), filepath.FromSlash(name)))
	if err != nil {
		panic(fmt.Sprintf("b24test: fixture %s: %v", name, err))
	}
	return b
}

// field is one key=value pair of a form body, its key split into bracket segments.
type field struct {
	path  []string
	value string
}

// Event builds an event body from a fixture with fields replaced, added or removed.
// Keys are bracket paths as they decode ("data[PARAMS][MESSAGE]",
// "auth[application_token]"); a "*" segment matches whatever ID the fixture has at that
// level ("data[COMMAND][*][COMMAND]", "data[BOT][*][BOT_ID]"). A key the fixture lacks
// is added next to its closest relatives, its "*" segments taking the fixture's ID at
// that level. The value Drop removes the field, or every field under a group key.
// Setting a value on a key that is a group in the fixture panics.
//
// The output is form-urlencoded with percent-encoded brackets, fields in the fixture's
// order, with no trailing newline.
func Event(fixture string, set map[string]string) []byte {
	return encodeFields(applySet(parseFields(Fixture(fixture)), set))
}

// applySet applies Event's set to a fixture's fields.
func applySet(fields []field, set map[string]string) []field {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a fixed order, so that overlapping keys act the same every run
	for _, k := range keys {
		pattern, err := splitKey(k)
		if err != nil {
			panic(fmt.Sprintf("b24test: Event key %q: %v", k, err))
		}
		if set[k] == Drop {
			fields = dropFields(fields, pattern)
		} else {
			fields = setField(fields, pattern, set[k], k)
		}
	}
	return fields
}

// encodeFields writes fields form-urlencoded, brackets percent-encoded, in order.
func encodeFields(fields []field) []byte {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(joinKey(f.path)))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(f.value))
	}
	return []byte(b.String())
}

func parseFields(body []byte) []field {
	s := strings.TrimRight(string(body), "\r\n")
	var out []field
	for part := range strings.SplitSeq(s, "&") {
		if part == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			panic(fmt.Sprintf("b24test: fixture key %q: %v", rawKey, err))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			panic(fmt.Sprintf("b24test: fixture value of %q: %v", key, err))
		}
		path, err := splitKey(key)
		if err != nil {
			panic(fmt.Sprintf("b24test: fixture key %q: %v", key, err))
		}
		out = append(out, field{path: path, value: value})
	}
	return out
}

// matchPrefix reports whether pattern matches the first len(pattern) segments of path.
func matchPrefix(pattern, path []string) bool {
	if len(pattern) > len(path) {
		return false
	}
	for i, seg := range pattern {
		if seg != "*" && seg != path[i] {
			return false
		}
	}
	return true
}

func dropFields(fields []field, pattern []string) []field {
	out := fields[:0:0]
	for _, f := range fields {
		if !matchPrefix(pattern, f.path) {
			out = append(out, f)
		}
	}
	return out
}

func setField(fields []field, pattern []string, value, key string) []field {
	matched := false
	for i, f := range fields {
		if !matchPrefix(pattern, f.path) {
			continue
		}
		if len(f.path) != len(pattern) {
			panic(fmt.Sprintf("b24test: Event key %q is a group in the fixture; set its fields, or Drop it", key))
		}
		fields[i].value = value
		matched = true
	}
	if matched {
		return fields
	}
	// A new field: resolve each "*" to the ID the fixture has at that level.
	path := append([]string(nil), pattern...)
	for i, seg := range path {
		if seg != "*" {
			continue
		}
		found := false
		for _, f := range fields {
			if len(f.path) > i && matchPrefix(path[:i], f.path) {
				path[i] = f.path[i]
				found = true
				break
			}
		}
		if !found {
			panic(fmt.Sprintf("b24test: Event key %q: the fixture has no group to match %q at level %d", key, "*", i))
		}
	}
	for _, f := range fields {
		if len(f.path) < len(path) && matchPrefix(f.path, path) {
			panic(fmt.Sprintf("b24test: Event key %q: %s is a value in the fixture, not a group", key, joinKey(f.path)))
		}
	}
	// Insert after the last field sharing the longest prefix, so the group stays together.
	at, best := len(fields), 0
	for i, f := range fields {
		if n := commonPrefix(f.path, path); n > 0 && n >= best {
			at, best = i+1, n
		}
	}
	out := make([]field, 0, len(fields)+1)
	out = append(out, fields[:at]...)
	out = append(out, field{path: path, value: value})
	return append(out, fields[at:]...)
}

func commonPrefix(a, b []string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// splitKey turns "data[PARAMS][DIALOG_ID]" into [data PARAMS DIALOG_ID].
func splitKey(key string) ([]string, error) {
	name, rest, hasBrackets := strings.Cut(key, "[")
	if name == "" {
		return nil, fmt.Errorf("no name before the brackets")
	}
	if strings.Contains(name, "]") {
		return nil, fmt.Errorf("unbalanced brackets")
	}
	path := []string{name}
	if !hasBrackets {
		return path, nil
	}
	rest = "[" + rest
	for rest != "" {
		if rest[0] != '[' {
			return nil, fmt.Errorf("text after brackets")
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, fmt.Errorf("unbalanced brackets")
		}
		path = append(path, rest[1:end])
		rest = rest[end+1:]
	}
	return path, nil
}

func joinKey(path []string) string {
	var b strings.Builder
	b.WriteString(path[0])
	for _, seg := range path[1:] {
		b.WriteByte('[')
		b.WriteString(seg)
		b.WriteByte(']')
	}
	return b.String()
}

// maxAnswer caps how much of the bot's answer Post reads.
const maxAnswer = 1 << 20

// Post sends an event body to the bot's URL as Bitrix24 does (POST,
// application/x-www-form-urlencoded) and returns the answer's status and body.
func Post(ctx context.Context, url string, body []byte) (status int, respBody string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Bitrix24 Webhook Engine")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, string(b), err
}

// Post is the package's Post, sent from this portal: before sending it learns what a
// real portal would know from the event — the group chat it happened in (so the bot
// may post there) and which dialog its message ID belongs to (so imbot.command.answer
// lands there).
func (p *Portal) Post(ctx context.Context, url string, body []byte) (status int, respBody string, err error) {
	if ev, derr := bitrix24.Decode(body); derr == nil {
		p.learn(ev)
	}
	return Post(ctx, url, body)
}

func (p *Portal) learn(ev bitrix24.Event) {
	var msg bitrix24.Message
	var extraID int64
	switch e := ev.(type) {
	case *bitrix24.MessageAdd:
		msg = e.Message
	case *bitrix24.MessageUpdate:
		msg = e.Message
	case *bitrix24.MessageDelete:
		msg = e.Message
	case *bitrix24.CommandAdd:
		msg = e.Message
		extraID = e.Command.MessageID
	case *bitrix24.JoinChat:
		msg = bitrix24.Message{DialogID: e.DialogID, ChatID: e.ChatID, ChatType: e.ChatType, FromUserID: e.UserID}
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if msg.DialogID == "" {
		return
	}
	for _, id := range []int64{msg.ID, extraID} {
		if id > 0 {
			if _, ours := p.byID[id]; !ours {
				p.known[id] = msg.DialogID
			}
		}
	}
	rest, isChat := strings.CutPrefix(msg.DialogID, "chat")
	if !isChat {
		return
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		return
	}
	c := p.chats[id]
	if c == nil {
		typ := "CHAT"
		if msg.ChatType == "O" {
			typ = "OPEN"
		}
		c = &Chat{ID: id, Title: msg.ChatTitle, Type: typ, EntityType: msg.ChatEntityType, EntityID: msg.ChatEntityID}
		p.chats[id] = c
		p.created[id] = time.Now()
	}
	if u := msg.FromUserID; u > 0 && !containsID(c.Users, u) {
		c.Users = append(c.Users, u)
	}
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
