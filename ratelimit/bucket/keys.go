package bucket

import (
	"fmt"
	"strings"
)

// hashTag returns the part of key that Redis Cluster hashes: the text
// between the first '{' and the next '}' if that is not empty, else the whole
// key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

// checkKeys enforces the rules for the keys of one call: not empty, no
// repeats, and one hash tag for all of them.
func checkKeys(reqs []Request) error {
	if len(reqs) == 0 {
		return fmt.Errorf("%w: no requests", ErrInvalidKey)
	}
	tag := hashTag(reqs[0].Key)
	for i := range reqs {
		k := reqs[i].Key
		if k == "" {
			return ErrInvalidKey
		}
		if i == 0 {
			continue
		}
		if hashTag(k) != tag {
			return fmt.Errorf("%w: %q and %q", ErrCrossSlot, reqs[0].Key, k)
		}
		for j := range i {
			if reqs[j].Key == k {
				return fmt.Errorf("%w: %q", ErrDuplicateKey, k)
			}
		}
	}
	return nil
}

// shardOf hashes s (FNV-1a) into [0, n).
func shardOf(s string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
