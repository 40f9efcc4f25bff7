package bitrix24

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// EncodeQuery encodes params the way PHP's http_build_query does, which is what
// Bitrix24 parses batch commands with ("imbot.message.add?BOT_ID=1&DIALOG_ID=27&…"):
// nested maps become a[b]=…, slices a[0]=…, true "1" and false "0", nil is left out,
// numbers are written in decimal without an exponent. Structs (Keyboard) go through
// encoding/json first so their json tags name the keys. Empty maps and slices vanish,
// as in PHP. Keys come out in a fixed order (numbers ascending, then alphabetically) so
// the output is deterministic. Keys and values are percent-encoded with
// url.QueryEscape, brackets included, as PHP does. Keys must not contain brackets.
func EncodeQuery(params map[string]any) string {
	var b strings.Builder
	for _, k := range sortedKeys(params) {
		encodeValue(&b, k, params[k])
	}
	return b.String()
}

// encodeValue writes key=value pairs for v under the (unescaped) key prefix.
func encodeValue(b *strings.Builder, key string, v any) {
	v = normalize(v)
	switch x := v.(type) {
	case nil:
	case string:
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(x))
	case map[string]any:
		for _, k := range sortedKeys(x) {
			encodeValue(b, key+"["+k+"]", x[k])
		}
	case []any:
		for i, e := range x {
			encodeValue(b, key+"["+strconv.Itoa(i)+"]", e)
		}
	}
}

// normalize reduces v to nil, a string leaf, map[string]any or []any.
func normalize(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case bool:
		if x {
			return "1"
		}
		return "0"
	case int:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case json.Number:
		return numberString(x)
	case []byte:
		return string(x)
	case map[string]any:
		return x
	case Form:
		return map[string]any(x)
	case []any:
		return x
	case json.RawMessage:
		return fromJSON(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return normalize(rv.Elem().Interface())
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return normalize(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10)
	case reflect.Float32:
		return formatFloat(rv.Float(), 32)
	case reflect.Float64:
		return formatFloat(rv.Float(), 64)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			// Integer-keyed maps and the like: let encoding/json render the keys.
			return fromJSONValue(v)
		}
		m := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			m[iter.Key().String()] = iter.Value().Interface()
		}
		return m
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil
		}
		s := make([]any, rv.Len())
		for i := range s {
			s[i] = rv.Index(i).Interface()
		}
		return s
	}
	// Structs and anything else with a JSON form: honour the json tags.
	return fromJSONValue(v)
}

func fromJSONValue(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		// Not representable: PHP would drop what it cannot encode, so do we.
		return nil
	}
	return fromJSON(raw)
}

func fromJSON(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep 12345678901234567890 exact instead of a float64
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil
	}
	return out
}

// formatFloat writes a float in plain decimal: a batch query is parsed by PHP, which
// reads "1e+21" as a string, not a number.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NAN"
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// numberString renders a JSON number without an exponent.
func numberString(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, "eE") {
		return s
	}
	if f, err := n.Float64(); err == nil {
		return formatFloat(f, 64)
	}
	return s
}

// sortedKeys orders keys as Form.Keys does: numbers ascending first, then the rest
// alphabetically.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	return keys
}

func keyLess(a, b string) bool {
	na, errA := strconv.ParseInt(a, 10, 64)
	nb, errB := strconv.ParseInt(b, 10, 64)
	switch {
	case errA == nil && errB == nil:
		if na != nb {
			return na < nb
		}
		return a < b // "1" and "01"
	case errA == nil:
		return true
	case errB == nil:
		return false
	}
	return a < b
}

// validKey reports whether a batch key is safe inside cmd[…]: letters, digits, '_'.
func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// validMethod reports whether a method name is safe to put into a URL path or a batch
// command: a '/', '?' or '&' would silently turn it into another request.
func validMethod(m string) bool {
	if m == "" || len(m) > 128 || m[0] == '.' {
		return false
	}
	for _, r := range m {
		if !(r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func errInvalidMethod(m string) error {
	return fmt.Errorf("bitrix24: invalid method name %q", truncate(m))
}
