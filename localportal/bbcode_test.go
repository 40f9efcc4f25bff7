package localportal

import (
	"regexp"
	"strings"
	"testing"
)

// TestRenderBB: the bot's BB-code shows as Bitrix24 shows it, and nothing a person
// writes becomes markup.
func TestRenderBB(t *testing.T) {
	t.Parallel()
	href := func(d string) string { return PageURL(1, d) }
	for _, tc := range []struct{ in, want string }{
		{"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"[b]bold[/b] and [i]it[/i] [u]u[/u] [s]s[/s]", "<b>bold</b> and <i>it</i> <u>u</u> <s>s</s>"},
		{"[b]<i>[/b]", "<b>&lt;i&gt;</b>"},
		{"[b]mismatched[/i]", "[b]mismatched[/i]"},
		{"[url=https://x.test/?a=1&b=2]site[/url]", `<a href="https://x.test/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">site</a>`},
		{"[url]https://x.test/[/url]", `<a href="https://x.test/" target="_blank" rel="noopener noreferrer">https://x.test/</a>`},
		{"[url=javascript:alert(1)]x[/url]", "[url=javascript:alert(1)]x[/url]"},
		{`[url]" onmouseover="alert(1)[/url]`, "[url]&#34; onmouseover=&#34;alert(1)[/url]"},
		{"[USER=3]anyone[/USER]", `<span class="mention">Olga Smirnova</span>`},
		{"[USER=77]<b>x</b>[/USER]", `<span class="mention">&lt;b&gt;x&lt;/b&gt;</span>`},
		{"[\u200bUSER=all]everyone[/USER]", "[\u200bUSER=all]everyone[/USER]"},
		{"[chat=1001]Question[/chat]", `<a class="chat" href="/?as=1&amp;chat=chat1001">Question</a>`},
		{"one\ntwo#BR#three[br]four", "one<br>two<br>three<br>four"},
		{">>quoted\n>>more\nafter", "<blockquote>quoted<br>more</blockquote>after"},
		{"[quote]q[/quote]", "<blockquote>q</blockquote>"},
	} {
		if got := string(RenderBB(tc.in, href)); got != tc.want {
			t.Errorf("RenderBB(%q)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// allowedTag is every tag RenderBB may write.
var allowedTag = regexp.MustCompile(`</?(b|i|u|s|blockquote)>|<br>|<span class="mention">|</span>|<a (class="chat" )?href="[^"<>]*"( target="_blank" rel="noopener noreferrer")?>|</a>`)

// FuzzRenderBB: whatever the text, the only markup is the tags RenderBB writes, and a
// link goes nowhere but http(s) and the page.
func FuzzRenderBB(f *testing.F) {
	for _, s := range []string{"[b]x[/b]", "[url=https://a.test]a[/url]", "[USER=1]u[/USER]", "[chat=5]c[/chat]", ">>q", "<a href=x>", "[url=\"><script>]x[/url]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := allowedTag.ReplaceAllString(string(RenderBB(in, func(d string) string { return PageURL(1, d) })), "")
		if strings.ContainsAny(out, "<>") {
			t.Fatalf("RenderBB(%q) leaves markup: %s", in, out)
		}
		for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(string(RenderBB(in, nil)), -1) {
			if !strings.HasPrefix(m[1], "http://") && !strings.HasPrefix(m[1], "https://") {
				t.Fatalf("RenderBB(%q) links to %s", in, m[1])
			}
		}
	})
}
