// Package bitrix24 speaks the Bitrix24 wire protocol: it decodes events — v1's and
// imbot.v2's bracket forms, v2's Event.get answers — into one set of typed events,
// calls the portal's REST API, and renders the bot's actions as v1 or v2 calls. It
// knows nothing of supportbot's rules.
package bitrix24

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unsafe"
)

// ErrMalformed marks a body that is not a well-formed bracket form or event.
var ErrMalformed = errors.New("malformed event body")

// Form is a body decoded from PHP's http_build_query form: every leaf is a string,
// every bracket level a nested Form. Bitrix24 keys some levels by changing IDs
// (data[BOT][567][…]), so the shape is a map, not a struct.
type Form map[string]any

// Limits on hostile bodies. The handler caps the body at 1 MiB; these cap the work a
// body of that size can cause.
const (
	maxFormPairs = 20000
	maxFormDepth = 16
)

// ParseForm decodes a form-urlencoded body whose keys use PHP bracket syntax,
// percent-encoded (data%5BPARAMS%5D) or not (data[PARAMS]). A trailing line break is
// ignored: it is not valid form syntax, and saved bodies often end with one.
//
// It runs on every event, so it unescapes the whole body into one string and cuts
// every key and value out of it: one allocation for all the text, instead of two per
// field.
func ParseForm(body []byte) (Form, error) {
	body = bytes.TrimRight(body, "\r\n")
	type span struct{ key, eq, end int } // key: [key, eq), value: [eq, end) of the text
	spans := make([]span, 0, bytes.Count(body, []byte{'&'})+1)
	buf := make([]byte, 0, len(body))
	for len(body) > 0 {
		part := body
		if i := bytes.IndexByte(body, '&'); i >= 0 {
			part, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(part) == 0 {
			continue
		}
		if len(spans) == maxFormPairs {
			return nil, fmt.Errorf("%w: more than %d fields", ErrMalformed, maxFormPairs)
		}
		rawKey, rawValue, _ := bytes.Cut(part, []byte{'='})
		sp := span{key: len(buf)}
		var err error
		if buf, err = unescape(buf, rawKey); err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrMalformed, truncate(string(rawKey)), err)
		}
		sp.eq = len(buf)
		withValue, err := unescape(buf, rawValue)
		if err != nil {
			return nil, fmt.Errorf("%w: value of %q: %v", ErrMalformed, truncate(string(buf[sp.key:sp.eq])), err)
		}
		buf = withValue
		sp.end = len(buf)
		spans = append(spans, sp)
	}
	text := string(buf)
	b := formBuilder{root: Form{}}
	var segBuf [maxFormDepth + 1]string
	for _, sp := range spans {
		path, err := splitKey(text[sp.key:sp.eq], segBuf[:0])
		if err != nil {
			return nil, err
		}
		if err := b.set(path, text[sp.eq:sp.end]); err != nil {
			return nil, err
		}
	}
	return b.root, nil
}

// formBuilder remembers the groups of the last key set: Bitrix24 writes the fields
// of a group one after another, so the next key usually starts in the same group and
// needs no lookups to get there.
//
// It also keeps each group's next append index, so that "a[]" costs the same
// whatever the group already holds: finding it by scanning the group made 20,000
// appends quadratic, seconds of work before a forged event's token was even checked.
type formBuilder struct {
	root  Form
	path  [maxFormDepth + 1]string // the last key's group path…
	nodes [maxFormDepth + 1]Form   // …and the groups along it
	depth int
	next  map[unsafe.Pointer]int // a group's next append index, once it has numeric keys
}

func (b *formBuilder) set(path []string, value string) error {
	groups := path[:len(path)-1]
	shared := 0
	for shared < len(groups) && shared < b.depth && groups[shared] == b.path[shared] && groups[shared] != "" {
		shared++
	}
	node := b.root
	if shared > 0 {
		node = b.nodes[shared-1]
	}
	err := b.put(node, path[shared:], value, func(i int, child Form, key string) {
		b.path[shared+i], b.nodes[shared+i] = key, child
	})
	if err != nil {
		b.depth = 0
		return err
	}
	b.depth = len(groups)
	for i := range groups {
		if groups[i] == "" {
			b.depth = i // appended groups are new each time: never reuse them
			break
		}
	}
	return nil
}

// unescape appends the query-unescaped s ("+" is a space, "%XX" a byte) to dst.
func unescape(dst, s []byte) ([]byte, error) {
	plain := 0 // start of the run of bytes copied as they are
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '+':
			dst = append(append(dst, s[plain:i]...), ' ')
			plain = i + 1
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, fmt.Errorf("invalid URL escape %q", s[i:min(i+3, len(s))])
			}
			dst = append(append(dst, s[plain:i]...), unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			plain = i + 1
		}
	}
	return append(dst, s[plain:]...), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// splitKey turns "data[PARAMS][DIALOG_ID]" into [data PARAMS DIALOG_ID], as
// substrings of key appended to path. An empty segment ("a[]") means "append", as in
// PHP.
func splitKey(key string, path []string) ([]string, error) {
	open := strings.IndexByte(key, '[')
	if open < 0 {
		if strings.IndexByte(key, ']') >= 0 {
			return nil, fmt.Errorf("%w: unbalanced brackets in %q", ErrMalformed, truncate(key))
		}
		if key == "" {
			return nil, fmt.Errorf("%w: empty key", ErrMalformed)
		}
		return append(path, key), nil
	}
	if open == 0 {
		return nil, fmt.Errorf("%w: key %q has no name before its brackets", ErrMalformed, truncate(key))
	}
	path = append(path, key[:open])
	rest := key[open:]
	for rest != "" {
		if rest[0] != '[' {
			return nil, fmt.Errorf("%w: text after brackets in %q", ErrMalformed, truncate(key))
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, fmt.Errorf("%w: unbalanced brackets in %q", ErrMalformed, truncate(key))
		}
		seg := rest[1:end]
		if strings.IndexByte(seg, '[') >= 0 {
			return nil, fmt.Errorf("%w: nested brackets in %q", ErrMalformed, truncate(key))
		}
		if len(path) == maxFormDepth {
			return nil, fmt.Errorf("%w: key %q nests deeper than %d", ErrMalformed, truncate(key), maxFormDepth)
		}
		path = append(path, seg)
		rest = rest[end+1:]
	}
	return path, nil
}

// put stores value at path below node, creating groups on the way; visit is told of
// every group along the path.
func (b *formBuilder) put(node Form, path []string, value string, visit func(i int, group Form, key string)) error {
	for i, key := range path {
		if key == "" {
			// PHP's "a[]": the next integer index of this level.
			key = strconv.Itoa(b.next[reflect.ValueOf(node).UnsafePointer()])
		}
		existing, exists := node[key]
		if !exists && key[0] >= '0' && key[0] <= '9' { // only numeric keys move the next index
			if n, err := strconv.Atoi(key); err == nil {
				id := reflect.ValueOf(node).UnsafePointer()
				if b.next == nil {
					b.next = map[unsafe.Pointer]int{}
				}
				b.next[id] = max(b.next[id], n+1)
			}
		}
		if i == len(path)-1 {
			if _, isMap := existing.(Form); isMap {
				return fmt.Errorf("%w: %q is both a value and a group", ErrMalformed, truncate(strings.Join(path[:i+1], ".")))
			}
			node[key] = value
			return nil
		}
		switch next := existing.(type) {
		case Form:
			node = next
		default:
			if exists {
				return fmt.Errorf("%w: %q is both a value and a group", ErrMalformed, truncate(strings.Join(path[:i+1], ".")))
			}
			child := Form{}
			node[key] = child
			node = child
		}
		visit(i, node, path[i])
	}
	return nil
}

// String returns the leaf at path, or "" when it is missing or is a group.
func (f Form) String(path ...string) string {
	if len(path) == 0 {
		return ""
	}
	node := f.Group(path[:len(path)-1]...)
	if node == nil {
		return ""
	}
	s, _ := node[path[len(path)-1]].(string)
	return s
}

// Group returns the group at path, or nil when it is missing or is a leaf.
func (f Form) Group(path ...string) Form {
	node := f
	for _, seg := range path {
		next, ok := node[seg].(Form)
		if !ok {
			return nil
		}
		node = next
	}
	return node
}

// Keys returns the keys of the group in a stable order: numbers ascending first, then
// the rest alphabetically.
func (f Form) Keys() []string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, errA := strconv.ParseInt(keys[i], 10, 64)
		b, errB := strconv.ParseInt(keys[j], 10, 64)
		switch {
		case errA == nil && errB == nil:
			return a < b
		case errA == nil:
			return true
		case errB == nil:
			return false
		}
		return keys[i] < keys[j]
	})
	return keys
}

func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
