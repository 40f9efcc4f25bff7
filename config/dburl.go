package config

import (
	"strings"
)

// RedactDBURL is what may be shown of a PostgreSQL connection string: its host (or
// hosts), read as libpq reads the string, and nothing else — no user, password,
// port, database or parameter. A URL's credentials end at its first "@" before the
// host, and libpq's host part ends at the first "/": so in
// postgres://hostile:12/PW@host, net/url (and libpq) see the host "hostile" on port
// 12, which is the user and the start of a password with an unescaped "/". An "@"
// anywhere before the query means such doubt; then the host is what follows the
// last "@", and if that does not look like a host list, nothing is shown. The
// key=value form (host=… password=…) shows host= only. Unparsable: "set".
func RedactDBURL(s string) string {
	for _, scheme := range []string{"postgresql://", "postgres://"} {
		if rest, ok := strings.CutPrefix(s, scheme); ok {
			rest, _, _ = strings.Cut(rest, "?") // parameters may hold a password: never shown
			if i := strings.LastIndexByte(rest, '@'); i >= 0 {
				rest = rest[i+1:]
			}
			authority, _, _ := strings.Cut(rest, "/")
			if hosts, ok := hostsOnly(authority); ok {
				return scheme + hosts + "/…"
			}
			return "set"
		}
	}
	if host, ok := keywordHost(s); ok {
		return "host=" + host
	}
	return "set"
}

// hostsOnly drops the ports of a URL's host list ("h1:5432,h2") and checks that what
// is left is host names or addresses, nothing that could be part of a secret.
func hostsOnly(authority string) (string, bool) {
	var hosts []string
	for h := range strings.SplitSeq(authority, ",") {
		if strings.HasPrefix(h, "[") { // [::1]:5432
			end := strings.IndexByte(h, ']')
			if end < 0 {
				return "", false
			}
			h = h[:end+1]
		} else if i := strings.IndexByte(h, ':'); i >= 0 {
			h = h[:i]
		}
		if !hostLike(strings.Trim(h, "[]")) {
			return "", false
		}
		hosts = append(hosts, h)
	}
	return strings.Join(hosts, ","), len(hosts) > 0
}

// hostLike: letters, digits, '.', '-', ':' (IPv6) and '%' (a URL-encoded socket
// directory), and not empty.
func hostLike(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:%_", c)) {
			return false
		}
	}
	return true
}

// keywordHost reads host (or hostaddr) from libpq's key=value form: pairs split by
// whitespace, "=" with optional spaces around it, values single-quoted with
// backslash escapes or bare.
func keywordHost(s string) (string, bool) {
	var found string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return "", false
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t\n\r'\\") {
			return "", false
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n\r")
		var value strings.Builder
		if strings.HasPrefix(s, "'") {
			i, closed := 1, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					value.WriteByte(s[i])
					continue
				}
				if s[i] == '\'' {
					closed = true
					break
				}
				value.WriteByte(s[i])
			}
			if !closed {
				return "", false
			}
			s = s[i+1:]
		} else {
			end := strings.IndexAny(s, " \t\n\r")
			if end < 0 {
				end = len(s)
			}
			for i := 0; i < end; i++ {
				if s[i] == '\\' && i+1 < end {
					i++
				}
				value.WriteByte(s[i])
			}
			s = s[end:]
		}
		if (key == "host" || key == "hostaddr" && found == "") && value.Len() > 0 {
			found = value.String()
		}
	}
	if hosts, ok := hostsOnly(found); ok {
		return hosts, true
	}
	return "", false
}
