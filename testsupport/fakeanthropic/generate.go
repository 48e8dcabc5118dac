package fakeanthropic

import (
	"encoding/json"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
)

// OutputTokensHeader overrides the output target of one request.
const OutputTokensHeader = "x-fake-output-tokens"

// ToolUseHeader names a declared tool the reply should call.
const ToolUseHeader = "x-fake-tool-use"

// vocab words are lowercase letters only and at most 8 runes, so each is
// exactly one token of the fake tokenizer.
var vocab = strings.Fields(`the of and to in is that for it as was with be by on not
he this are or his from at which but have an they you were her she there one all
we their can has been more will would when who if out so said what up its about
into than them only other new some could time these two may then do first any my
now such like our over man me even most made after also did many before must
through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get
here between both life being under never day same another know while last might
us great old year off come since against go came right used take three rivers
light garden window number silver quiet forest morning`)

// reply is the deterministic output of one request.
type reply struct {
	words      []string // text block words, one token each
	tool       string   // tool_use block name, "" for none
	toolTokens int
	stopReason string
}

func (p reply) text() string { return strings.Join(p.words, " ") }

// outputTokens is what usage.output_tokens reports for p.
func (p reply) outputTokens() int { return len(p.words) + p.toolTokens }

// outputTarget reads the requested output length: the x-fake-output-tokens
// header, else cfg.DefaultOutputTokens, else clamp(input/4, 16, 1024).
func outputTarget(r *http.Request, cfg *Config, totalInput int) (int, *apiError) {
	if v := r.Header.Get(OutputTokensHeader); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, invalid(OutputTokensHeader + ": must be a positive integer")
		}
		return n, nil
	}
	if cfg.DefaultOutputTokens > 0 {
		return cfg.DefaultOutputTokens, nil
	}
	return min(max(totalInput/4, 16), 1024), nil
}

// makeReply builds the reply of req: target text tokens, cut at max_tokens,
// then a tool_use block for toolName if it is declared and fits. The words
// depend only on seed (model, system and messages), so a request gives the
// same text streamed or not.
func makeReply(req *MessagesRequest, target int, toolName string, seed []byte) reply {
	h := fnv.New64a()
	h.Write(seed)
	start := h.Sum64()
	p := reply{stopReason: "end_turn"}
	n := target
	if int64(n) > req.MaxTokens {
		n = int(req.MaxTokens)
		p.stopReason = "max_tokens"
	}
	p.words = make([]string, n)
	for i := range p.words {
		p.words[i] = vocab[(start+uint64(i)*7)%uint64(len(vocab))]
	}
	if toolName != "" && p.stopReason == "end_turn" && declaresTool(req, toolName) {
		cost := CountText(toolName) + CountText("{}")
		if int64(n+cost) <= req.MaxTokens {
			p.tool, p.toolTokens, p.stopReason = toolName, cost, "tool_use"
		}
	}
	return p
}

func declaresTool(req *MessagesRequest, name string) bool {
	for _, t := range req.Tools {
		var v struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(t, &v) == nil && v.Name == name {
			return true
		}
	}
	return false
}

// chunks splits words into text_delta texts of per words; their
// concatenation is the joined text.
func chunks(words []string, per int) []string {
	var out []string
	for i := 0; i < len(words); i += per {
		s := strings.Join(words[i:min(i+per, len(words))], " ")
		if i > 0 {
			s = " " + s
		}
		out = append(out, s)
	}
	return out
}
