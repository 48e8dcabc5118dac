// Package poolsim measures key-pool strategies against the fake Anthropic
// API: a workload offered above the pool's capacity, through guardian (the
// real processors in the Envoy emulator) and through two baselines of what
// peer gateways do, each behind SDK-style retries. `make bench-pool` runs it
// through cmd/poolbench; a later simulator can reuse it.
package poolsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/claude-guardian/claude-guardian/testsupport/fakeanthropic"
)

// Request is one call of the workload.
type Request struct {
	At          time.Duration // offset from the start
	Body        []byte
	Stream      bool
	InputTokens int // by the fake's tokenizer
	MaxTokens   int
	Output      int // what the fake will produce (x-fake-output-tokens)
}

// Workload is the calls to offer, sorted by At.
type Workload struct {
	Requests []Request
	// RatePerMinute is the offered request rate.
	RatePerMinute float64
}

// Capacity is what a pool of accounts can serve per minute.
type Capacity struct {
	RPM, ITPM, OTPM float64
}

// PoolCapacity sums the accounts' limits.
func PoolCapacity(accounts int, l fakeanthropic.Limits) Capacity {
	n := float64(accounts)
	return Capacity{RPM: n * float64(l.RPM), ITPM: n * float64(l.ITPM), OTPM: n * float64(l.OTPM)}
}

// vocabulary words are at most eight letters: one token each for the fake.
var vocabulary = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima
mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu river
stone cloud forest market ledger signal vector matrix orbit planet garden window harbor bridge`)

// NewWorkload builds a mix of prompt sizes, max_tokens and streaming whose
// demand over d is load × what the pool can serve in d on its tightest
// axis. Buckets start full, so over d an account serves its per-minute
// limit × (1 + d / 1 min): the offered rate includes that first burst.
func NewWorkload(c Capacity, load float64, d time.Duration, seed uint64) Workload {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sample := func() Request {
		var words int
		switch x := rng.Float64(); {
		case x < 0.6:
			words = 100 + rng.IntN(300)
		case x < 0.9:
			words = 800 + rng.IntN(1200)
		default:
			words = 3000 + rng.IntN(3000)
		}
		maxTokens := []int{128, 256, 512, 1024}[rng.IntN(4)]
		out := int(float64(maxTokens) * (0.3 + 0.6*rng.Float64()))
		stream := rng.IntN(2) == 0
		var b strings.Builder
		for i := range words {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
		}
		text := b.String()
		body := fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":%d,"stream":%t,"messages":[{"role":"user","content":%q}]}`,
			maxTokens, stream, text)
		in, _ := fakeanthropic.CountTokens([]byte(body))
		return Request{Body: []byte(body), Stream: stream, InputTokens: in, MaxTokens: maxTokens, Output: out}
	}
	// Mean demand per request, from a large sample of the same mix.
	var sumIn, sumOut float64
	const probe = 2000
	for range probe {
		r := sample()
		sumIn += float64(r.InputTokens)
		sumOut += float64(r.Output)
	}
	meanIn, meanOut := sumIn/probe, sumOut/probe
	binding := math.Min(c.RPM, math.Min(c.ITPM/meanIn, c.OTPM/meanOut))
	window := (1 + d.Minutes()) / d.Minutes() // burst + refill, per minute of d
	rate := load * binding * window           // requests per minute
	w := Workload{RatePerMinute: rate}
	var t time.Duration
	for {
		t += time.Duration(rng.ExpFloat64() / rate * float64(time.Minute))
		if t >= d {
			break
		}
		r := sample()
		r.At = t
		w.Requests = append(w.Requests, r)
	}
	return w
}
