package emulator

import "sync"

// stats holds Envoy-named counters.
type stats struct {
	mu sync.Mutex
	c  map[string]uint64
}

func (s *stats) inc(name string) { s.add(name, 1) }

func (s *stats) add(name string, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		s.c = map[string]uint64{}
	}
	s.c[name] += n
}

func (s *stats) snapshot() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.c))
	for k, v := range s.c {
		out[k] = v
	}
	return out
}
