package anthropic

import (
	"fmt"
	"strings"
	"testing"
)

func estimateOf(t *testing.T, body string) int64 {
	t.Helper()
	r, err := ParseRequest([]byte(body), Messages)
	if err != nil {
		t.Fatal(err)
	}
	return r.EstimatedInputTokens
}

// TestEstimateRules pins the documented rules so that a change to them is
// deliberate.
func TestEstimateRules(t *testing.T) {
	msg := func(content string) string {
		return fmt.Sprintf(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":%s}]}`, content)
	}
	tests := []struct {
		name string
		body string
		want int64
	}{
		// 8 per request + 4 per message + ceil(13 / 3.3) = 4.
		{"hello", msg(`"Hello, Claude"`), 8 + 4 + 4},
		{"empty text", msg(`""`), 12},
		// 33 ASCII bytes = 10 tokens.
		{"33 bytes", msg(`"` + strings.Repeat("a", 33) + `"`), 12 + 10},
		// Non-ASCII: one per character (5 CJK characters).
		{"cjk", msg(`"你好，世界"`), 12 + 5},
		{"image", msg(`[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]`), 12 + 1600},
		// Tools: 346 + ceil(len(tools JSON) / 3).
		{"tools", `{"model":"m","max_tokens":1,"tools":[{"name":"f","input_schema":{}}],"messages":[{"role":"user","content":""}]}`,
			int64(12 + 346 + (len(`[{"name":"f","input_schema":{}}]`)+2)/3)},
		// System text counts like message text.
		{"system", `{"model":"m","max_tokens":1,"system":"` + strings.Repeat("b", 66) + `","messages":[{"role":"user","content":""}]}`, 12 + 20},
	}
	for _, tt := range tests {
		if got := estimateOf(t, tt.body); got != tt.want {
			t.Errorf("%s: estimate %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestEstimateGrowsWithContent: more text never estimates fewer tokens.
func TestEstimateGrowsWithContent(t *testing.T) {
	prev := int64(0)
	for n := 0; n < 2000; n += 37 {
		got := estimateOf(t, fmt.Sprintf(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":%q}]}`, strings.Repeat("word ", n)))
		if got < prev {
			t.Fatalf("%d words: %d < %d", n, got, prev)
		}
		prev = got
	}
}

func BenchmarkParseRequest2KB(b *testing.B) {
	user := strings.Repeat("Please summarise the following paragraph in one sentence. ", 12)
	body := []byte(fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":1024,"system":"You are terse.","messages":[{"role":"user","content":%q},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":%q}]}]}`, user, user))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseRequest(body, Messages); err != nil {
			b.Fatal(err)
		}
	}
}
