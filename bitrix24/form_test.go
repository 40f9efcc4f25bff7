package bitrix24

import (
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func BenchmarkParseForm(b *testing.B) {
	body := readFixture(b, "v1/onimbotmessageadd-group.form")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseForm(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	body := readFixture(b, "v1/onimbotmessageadd-group.form")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceParse is the plain way to build the tree: unescape each pair, walk from the
// root every time. ParseForm must agree with it on every input.
func referenceParse(body []byte) (Form, error) {
	root := Form{}
	s := strings.TrimRight(string(body), "\r\n")
	for _, part := range strings.Split(s, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, err
		}
		path, err := splitKey(key, nil)
		if err != nil {
			return nil, err
		}
		node := root
		for i, seg := range path {
			if seg == "" {
				seg = strconv.Itoa(nextIndex(node))
			}
			if i == len(path)-1 {
				if _, ok := node[seg].(Form); ok {
					return nil, errors.New("value over group")
				}
				node[seg] = value
				break
			}
			switch next := node[seg].(type) {
			case Form:
				node = next
			case nil:
				child := Form{}
				node[seg] = child
				node = child
			default:
				return nil, errors.New("group over value")
			}
		}
	}
	return root, nil
}

func FuzzParseFormMatchesReference(f *testing.F) {
	f.Add(readFixture(f, "v1/onimbotmessageadd-group.form"))
	f.Add([]byte("a[b][c]=1&a[b][d]=2&a[e]=3&a[b][f]=4&x[]=1&x[]=2&y[][z]=1&y[][z]=2"))
	f.Add([]byte("a[b]=1&a[b][c]=2&a=3"))
	f.Add([]byte("a+b%20c[d+e]=f+g%2Bh"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseForm(body)
		want, refErr := referenceParse(body)
		if (err != nil) != (refErr != nil) {
			t.Fatalf("ParseForm err %v, reference err %v", err, refErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseForm\n%v\nreference\n%v", got, want)
		}
	})
}

// nextIndex is PHP's rule for "a[]" the slow and obvious way: one more than the
// largest integer key of the group.
func nextIndex(node Form) int {
	n := 0
	for k := range node {
		if i, err := strconv.Atoi(k); err == nil && i >= n {
			n = i + 1
		}
	}
	return n
}

// BenchmarkParseFormAppends: 20,000 "a[]" pairs, the hostile body of the hardening
// issue, decode in linear time (it took seconds when each append scanned its group).
//
//	go test -run XXX -bench ParseFormAppends ./bitrix24/
func BenchmarkParseFormAppends(b *testing.B) {
	for _, n := range []int{5000, 20000} {
		body := []byte(strings.Repeat("a[]=1&", n))
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ParseForm(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParseFormAppends: appends keep PHP's numbering, after explicit keys too, at
// the largest body the decoder takes.
func TestParseFormAppends(t *testing.T) {
	f, err := ParseForm([]byte(strings.Repeat("a[]=1&", maxFormPairs-2) + "b[5]=x&b[]=y"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(f.Group("a")); got != maxFormPairs-2 || f.String("a", strconv.Itoa(maxFormPairs-3)) != "1" || f.String("b", "6") != "y" {
		t.Fatalf("appends decoded to %d entries: %v", got, f.Group("b"))
	}
}
