package keypool

import (
	"strings"

	"github.com/claude-guardian/claude-guardian/config"
)

// Class is a model class. Anthropic counts each class against its own
// limits (all Opus 4.x models share one bucket, all Sonnet 4.x another).
type Class string

// The model classes.
const (
	Opus   Class = "opus"
	Sonnet Class = "sonnet"
	Haiku  Class = "haiku"
)

var classes = [...]Class{Opus, Sonnet, Haiku}

// ClassOf maps a model name to its class; unknown models count as sonnet,
// the middle tier, whose limits are the usual defaults.
func ClassOf(model string) Class {
	switch m := strings.ToLower(model); {
	case strings.Contains(m, "opus"):
		return Opus
	case strings.Contains(m, "haiku"):
		return Haiku
	}
	return Sonnet
}

// classLimits resolves an account's limits per class: the class override
// where given, else the account's limits.
func classLimits(a config.Account) map[Class]config.Limits {
	out := make(map[Class]config.Limits, len(classes))
	for _, c := range classes {
		l, ok := a.Classes[string(c)]
		if !ok {
			l = a.Limits
		}
		out[c] = l
	}
	return out
}
