package bitrix24_test

import (
	"encoding/json"
	"math/rand"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"supportbot/bitrix24"
)

func TestEncodeQueryExamples(t *testing.T) {
	type tagged struct {
		Name  string `json:"NAME"`
		Skip  string `json:"-"`
		Empty string `json:"EMPTY,omitempty"`
	}
	s := "x"
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"flat, sorted", map[string]any{"MESSAGE": "hi", "BOT_ID": 1, "DIALOG_ID": "27"},
			"BOT_ID=1&DIALOG_ID=27&MESSAGE=hi"},
		{"nested map", map[string]any{"a": map[string]any{"d": map[string]any{"e": "f"}, "b": "c"}},
			"a%5Bb%5D=c&a%5Bd%5D%5Be%5D=f"},
		{"slice", map[string]any{"USERS": []int64{5, 7}},
			"USERS%5B0%5D=5&USERS%5B1%5D=7"},
		{"slice of maps", map[string]any{"L": []any{map[string]any{"k": "v"}, "w"}},
			"L%5B0%5D%5Bk%5D=v&L%5B1%5D=w"},
		{"keyboard struct", map[string]any{"KEYBOARD": bitrix24.Keyboard{Buttons: []bitrix24.Button{
			{Text: "Take", Command: "take", CommandParams: "42", Block: "Y"}, bitrix24.NewLine()}}},
			"KEYBOARD%5BBUTTONS%5D%5B0%5D%5BBLOCK%5D=Y&KEYBOARD%5BBUTTONS%5D%5B0%5D%5BCOMMAND%5D=take" +
				"&KEYBOARD%5BBUTTONS%5D%5B0%5D%5BCOMMAND_PARAMS%5D=42&KEYBOARD%5BBUTTONS%5D%5B0%5D%5BTEXT%5D=Take" +
				"&KEYBOARD%5BBUTTONS%5D%5B1%5D%5BTYPE%5D=NEWLINE"},
		{"pointer to struct, json tags", map[string]any{"S": &tagged{Name: "n", Skip: "no"}}, "S%5BNAME%5D=n"},
		{"bools as PHP does", map[string]any{"t": true, "f": false}, "f=0&t=1"},
		{"numbers without exponent", map[string]any{
			"big": 1e21, "half": 0.5, "neg": -3, "u8": uint8(7), "num": json.Number("1e3"), "i64": int64(-9007199254740993),
			"f32": float32(0.1),
		}, "big=1000000000000000000000&f32=0.1&half=0.5&i64=-9007199254740993&neg=-3&num=1000&u8=7"},
		{"unicode and reserved characters", map[string]any{"MESSAGE": "Привет & a=b [x] 100% +"},
			"MESSAGE=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+%26+a%3Db+%5Bx%5D+100%25+%2B"},
		{"nil and empty groups vanish", map[string]any{"a": nil, "b": map[string]any{}, "c": "1", "d": []string{}, "e": (*tagged)(nil)},
			"c=1"},
		{"numeric keys first, ascending", map[string]any{"10": "a", "9": "b", "x": "c"}, "9=b&10=a&x=c"},
		{"map of strings, pointer to string", map[string]any{"m": map[string]string{"k": "v"}, "p": &s}, "m%5Bk%5D=v&p=x"},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bitrix24.EncodeQuery(tt.params)
			if got != tt.want {
				t.Errorf("EncodeQuery =\n %s\nwant\n %s", got, tt.want)
			}
			// Same input, same output: nothing depends on map iteration order.
			for range 5 {
				if again := bitrix24.EncodeQuery(tt.params); again != got {
					t.Fatalf("not deterministic: %s vs %s", again, got)
				}
			}
		})
	}
}

// The property: whatever nested params go in, ParseForm gives back the same tree with
// every leaf as its string form, slices as groups keyed 0…n-1, and nils and empty
// groups left out (PHP's http_build_query drops them too).
func TestEncodeQueryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(20260824))
	for i := range 2000 {
		params := genMap(rng, 0)
		want := expectForm(params)
		q := bitrix24.EncodeQuery(params)
		got, err := bitrix24.ParseForm([]byte(q))
		if err != nil {
			t.Fatalf("case %d: ParseForm(%q): %v", i, q, err)
		}
		if want == nil {
			want = bitrix24.Form{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: round trip differs\nparams %#v\nquery  %s\ngot    %#v\nwant   %#v", i, params, q, got, want)
		}
		// Every pair is plain key=value with both sides escaped: nothing raw to confuse
		// the batch parser.
		for pair := range strings.SplitSeq(q, "&") {
			if q == "" {
				break
			}
			if strings.ContainsAny(pair, "[] ") || strings.Count(pair, "=") != 1 {
				t.Fatalf("case %d: pair %q is not fully escaped", i, pair)
			}
		}
	}
}

// Keys: anything but brackets (which PHP's syntax cannot carry in a key) and "".
var keyRunes = []rune("abcXYZ_09 .-&=%+?#/\\\"'ёЖ日本😀\t")

func genKey(rng *rand.Rand) string {
	if rng.Intn(4) == 0 {
		return strconv.Itoa(rng.Intn(12))
	}
	n := 1 + rng.Intn(6)
	var b strings.Builder
	for range n {
		b.WriteRune(keyRunes[rng.Intn(len(keyRunes))])
	}
	return b.String()
}

var valueRunes = []rune("aZ09 &=%+?[]#;,\n\r\x00ёЖ日本😀\"'<>\\")

func genValue(rng *rand.Rand, depth int) any {
	switch k := rng.Intn(12); {
	case k < 3:
		n := rng.Intn(8)
		var b strings.Builder
		for range n {
			b.WriteRune(valueRunes[rng.Intn(len(valueRunes))])
		}
		return b.String()
	case k == 3:
		return rng.Int63n(1<<53) - 1<<52
	case k == 4:
		return rng.Intn(2) == 0
	case k == 5:
		return rng.NormFloat64() * 1e6
	case k == 6:
		return nil
	case k == 7:
		return uint32(rng.Uint32())
	case k < 10 && depth < 4:
		return genMap(rng, depth+1)
	case depth < 4:
		n := rng.Intn(4)
		s := make([]any, n)
		for i := range s {
			s[i] = genValue(rng, depth+1)
		}
		return s
	}
	return "leaf"
}

func genMap(rng *rand.Rand, depth int) map[string]any {
	n := rng.Intn(5)
	m := make(map[string]any, n)
	for range n {
		m[genKey(rng)] = genValue(rng, depth)
	}
	return m
}

// expectForm is what the decoder must produce for v; nil for "nothing".
func expectForm(v any) any {
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
	case int64:
		return strconv.FormatInt(x, 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case map[string]any:
		f := bitrix24.Form{}
		for k, e := range x {
			if fe := expectForm(e); fe != nil {
				f[k] = fe
			}
		}
		if len(f) == 0 {
			return nil
		}
		return f
	case []any:
		f := bitrix24.Form{}
		for i, e := range x {
			if fe := expectForm(e); fe != nil {
				f[strconv.Itoa(i)] = fe
			}
		}
		if len(f) == 0 {
			return nil
		}
		return f
	}
	panic("unexpected generated type")
}

// A batch command built with EncodeQuery parses back into the parameters a direct
// call would have had.
func TestEncodeQueryBatchCommand(t *testing.T) {
	params := map[string]any{
		"BOT_ID":    1,
		"DIALOG_ID": "chat1157",
		"MESSAGE":   "[b]Ticket #12[/b] & more?",
		"KEYBOARD":  bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: "Open", Action: "DIALOG", ActionValue: "chat7"}}},
		"SYSTEM":    false,
	}
	cmd := "imbot.message.add?" + bitrix24.EncodeQuery(params)
	method, query, _ := strings.Cut(cmd, "?")
	if method != "imbot.message.add" {
		t.Fatalf("method %q", method)
	}
	f, err := bitrix24.ParseForm([]byte(query))
	if err != nil {
		t.Fatal(err)
	}
	if f.String("MESSAGE") != "[b]Ticket #12[/b] & more?" || f.String("DIALOG_ID") != "chat1157" ||
		f.String("KEYBOARD", "BUTTONS", "0", "ACTION_VALUE") != "chat7" || f.String("SYSTEM") != "0" {
		t.Fatalf("parsed %#v", f)
	}
	if _, err := url.ParseQuery(query); err != nil {
		t.Fatalf("not a valid query: %v", err)
	}
}
