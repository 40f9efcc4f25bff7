package localportal

import (
	"html"
	"html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// RenderBB renders a message's BB-code as Bitrix24's messenger shows it: [b], [i],
// [u], [s], [url], [USER=n], [chat=n], quotes (">>" lines, [quote]), line breaks
// (newlines, [br], #BR#); a mention shows the person's name. Everything else is text: the message is escaped first and
// only these tags become HTML, so a message can inject nothing. A tag the bot escaped
// (a zero-width space after "[") stays text. chatHref makes a chat link's address.
func RenderBB(text string, chatHref func(dialog string) string) template.HTML {
	s := html.EscapeString(text)
	s = brTag.ReplaceAllString(s, "\n")
	for tag, re := range simpleTags {
		s = re.ReplaceAllString(s, "<"+tag+">$1</"+tag+">")
	}
	s = urlTag.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlTag.FindStringSubmatch(m)
		href, label := sub[1], sub[2]
		if href == "" {
			href = html.UnescapeString(label)
		} else {
			href = html.UnescapeString(href)
		}
		if u, err := url.Parse(href); err != nil || u.Scheme != "http" && u.Scheme != "https" {
			return m
		}
		return `<a href="` + html.EscapeString(href) + `" target="_blank" rel="noopener noreferrer">` + label + `</a>`
	})
	s = userTag.ReplaceAllStringFunc(s, func(m string) string {
		sub := userTag.FindStringSubmatch(m)
		name := sub[2]
		// Bitrix24 shows a mention by the person's name, whatever the tag holds.
		if id, err := strconv.ParseInt(sub[1], 10, 64); err == nil {
			if p, ok := PersonOf(id); ok {
				name = html.EscapeString(p.Name())
			}
		}
		return `<span class="mention">` + name + `</span>`
	})
	s = chatTag.ReplaceAllStringFunc(s, func(m string) string {
		sub := chatTag.FindStringSubmatch(m)
		id, err := strconv.ParseInt(sub[1], 10, 64)
		if err != nil || id <= 0 || chatHref == nil {
			return sub[2]
		}
		return `<a class="chat" href="` + html.EscapeString(chatHref("chat"+sub[1])) + `">` + sub[2] + `</a>`
	})
	s = quoteTag.ReplaceAllString(s, "<blockquote>$1</blockquote>")
	var out []string
	var quote []string
	flush := func() {
		if len(quote) > 0 {
			out = append(out, "<blockquote>"+strings.Join(quote, "<br>")+"</blockquote>")
			quote = nil
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if q, ok := strings.CutPrefix(line, "&gt;&gt;"); ok {
			quote = append(quote, q)
			continue
		}
		flush()
		out = append(out, line+"<br>")
	}
	flush()
	return template.HTML(strings.TrimSuffix(strings.Join(out, ""), "<br>")) // #nosec: built from escaped text
}

var (
	brTag      = regexp.MustCompile(`(?i)\[br\]|#BR#`)
	simpleTags = map[string]*regexp.Regexp{"b": simpleTag("b"), "i": simpleTag("i"), "u": simpleTag("u"), "s": simpleTag("s")}
	urlTag     = regexp.MustCompile(`(?is)\[url(?:=([^\]\s"]+))?\](.*?)\[/url\]`)
	userTag    = regexp.MustCompile(`(?is)\[user=(\d+|all)\](.*?)\[/user\]`)
	chatTag    = regexp.MustCompile(`(?is)\[chat=(\d+)\](.*?)\[/chat\]`)
	quoteTag   = regexp.MustCompile(`(?is)\[quote\](.*?)\[/quote\]`)
)

func simpleTag(t string) *regexp.Regexp {
	return regexp.MustCompile(`(?is)\[` + t + `\](.*?)\[/` + t + `\]`)
}
