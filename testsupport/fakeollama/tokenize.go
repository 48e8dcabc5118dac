package fakeollama

import (
	"strings"
	"unicode"
)

// countTokens counts maximal runs of letters/digits and maximal runs of
// other non-space characters, one token each.
func countTokens(text string) int {
	n, kind := 0, 0
	for _, r := range text {
		k := 2
		switch {
		case unicode.IsSpace(r):
			k = 0
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			k = 1
		}
		if k != kind && k != 0 {
			n++
		}
		kind = k
	}
	return n
}

// words splits text into lowercase letter/digit runs.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}
