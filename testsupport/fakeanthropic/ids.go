package fakeanthropic

import "math/rand/v2"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns prefix + "_" + 24 random base62 characters, the shape of
// req_…, msg_… and toolu_… ids.
func newID(prefix string) string {
	b := make([]byte, 0, len(prefix)+25)
	b = append(b, prefix...)
	b = append(b, '_')
	for range 24 {
		b = append(b, base62[rand.N(len(base62))])
	}
	return string(b)
}
