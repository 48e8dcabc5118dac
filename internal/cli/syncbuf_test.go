package cli

import (
	"bytes"
	"strings"
	"sync"
)

// bytesBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type bytesBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *bytesBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *bytesBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *bytesBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }
