package anthropic

import "unicode/utf8"

// The input-token estimator.
//
// The gateway must reserve input tokens before Anthropic has counted them, so
// it estimates from the request body alone, without a tokenizer (Anthropic
// publishes none for current models). The estimate is reconciled with the
// real usage when the response arrives, so its job is to be close and, when
// wrong, slightly high: an over-estimate holds capacity a little longer, an
// under-estimate lets a request through that Anthropic may reject with 429.
//
// The rules:
//   - ASCII text: one token per 3.3 bytes. Anthropic's guidance is about 3.5
//     characters per token for English; 3.3 leans high on purpose.
//   - Non-ASCII text: one token per character (CJK and most non-Latin
//     scripts tokenize near one token per character or worse).
//   - JSON payloads (tool definitions, tool_use inputs, tool_result content):
//     one token per 3 bytes, since punctuation and keys tokenize densely.
//   - Each message costs 4 tokens of framing, each request 8.
//   - Tools add Anthropic's documented tool-use system prompt of 346 tokens
//     on top of their JSON.
//   - An image or document block costs 1,600 tokens (Anthropic's figure for
//     an image of about 1.15 megapixels, its largest unresized size); a
//     base64 document larger than that is counted at one token per 3 bytes
//     of its decoded size.
//
// Its error against a tokenizer is measured in estimate_test.go; the
// reconciliation after each response removes whatever error remains.
type estimate struct {
	asciiBytes int
	otherRunes int
	jsonBytes  int
	fixed      int
}

const (
	requestOverhead = 8
	messageOverhead = 4
	toolsOverhead   = 346
	mediaTokens     = 1600
)

func (e *estimate) text(s string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			e.asciiBytes++
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		e.otherRunes++
		i += size
	}
}

func (e *estimate) json(n int)  { e.jsonBytes += n }
func (e *estimate) message()    { e.fixed += messageOverhead }
func (e *estimate) tools(n int) { e.fixed += toolsOverhead; e.jsonBytes += n }

func (e *estimate) media(b wireBlock) {
	if b.Source != nil {
		if decoded := len(b.Source.Data) * 3 / 4; decoded/3 > mediaTokens && b.Type == "document" {
			e.fixed += decoded / 3
			return
		}
	}
	e.fixed += mediaTokens
}

func (e *estimate) tokens() int64 {
	t := requestOverhead + e.fixed + e.otherRunes
	t += (e.asciiBytes*10 + 32) / 33 // ceil(bytes / 3.3)
	t += (e.jsonBytes + 2) / 3       // ceil(bytes / 3)
	return int64(t)
}
