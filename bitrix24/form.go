// Package bitrix24 speaks the Bitrix24 wire protocol: it decodes the PHP bracket-form
// event bodies the portal posts into typed events, and calls the portal's REST API.
// It knows nothing of supportbot's rules.
package bitrix24

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
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
func ParseForm(body []byte) (Form, error) {
	s := strings.TrimRight(string(body), "\r\n")
	root := Form{}
	if s == "" {
		return root, nil
	}
	pairs := 0
	for part := range strings.SplitSeq(s, "&") {
		if part == "" {
			continue
		}
		pairs++
		if pairs > maxFormPairs {
			return nil, fmt.Errorf("%w: more than %d fields", ErrMalformed, maxFormPairs)
		}
		rawKey, rawValue, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrMalformed, truncate(rawKey), err)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, fmt.Errorf("%w: value of %q: %v", ErrMalformed, truncate(key), err)
		}
		path, err := splitKey(key)
		if err != nil {
			return nil, err
		}
		if err := root.set(path, value); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// splitKey turns "data[PARAMS][DIALOG_ID]" into [data PARAMS DIALOG_ID]. An empty
// segment ("a[]") is kept empty and means "append", as in PHP.
func splitKey(key string) ([]string, error) {
	open := strings.IndexByte(key, '[')
	if open < 0 {
		if strings.IndexByte(key, ']') >= 0 {
			return nil, fmt.Errorf("%w: unbalanced brackets in %q", ErrMalformed, truncate(key))
		}
		if key == "" {
			return nil, fmt.Errorf("%w: empty key", ErrMalformed)
		}
		return []string{key}, nil
	}
	if open == 0 {
		return nil, fmt.Errorf("%w: key %q has no name before its brackets", ErrMalformed, truncate(key))
	}
	path := []string{key[:open]}
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
		path = append(path, seg)
		if len(path) > maxFormDepth {
			return nil, fmt.Errorf("%w: key %q nests deeper than %d", ErrMalformed, truncate(key), maxFormDepth)
		}
		rest = rest[end+1:]
	}
	return path, nil
}

func (f Form) set(path []string, value string) error {
	node := f
	for i, seg := range path {
		if seg == "" {
			// PHP's "a[]": the next integer index of this level.
			seg = strconv.Itoa(nextIndex(node))
		}
		if i == len(path)-1 {
			if _, isMap := node[seg].(Form); isMap {
				return fmt.Errorf("%w: %q is both a value and a group", ErrMalformed, strings.Join(path[:i+1], "."))
			}
			node[seg] = value
			return nil
		}
		switch next := node[seg].(type) {
		case nil:
			child := Form{}
			node[seg] = child
			node = child
		case Form:
			node = next
		default:
			return fmt.Errorf("%w: %q is both a value and a group", ErrMalformed, strings.Join(path[:i+1], "."))
		}
	}
	return nil
}

func nextIndex(node Form) int {
	n := 0
	for k := range node {
		if i, err := strconv.Atoi(k); err == nil && i >= n {
			n = i + 1
		}
	}
	return n
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
