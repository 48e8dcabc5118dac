package poolsim

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// proxy is a baseline gateway: it forwards each request to the fake with a
// key its strategy picks, and returns the fake's answer as is (a 429
// reaches the caller).
type proxy struct {
	upstream string
	client   *http.Client
	pick     func() int     // index of the key to use, or -1: none usable
	report   func(int, int) // key index, status
	keys     []string
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	i := p.pick()
	if i < 0 {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"type":"error","error":{"type":"api_error","message":"no key available"}}`)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.Path, bytes.NewReader(body))
	for _, h := range []string{"content-type", "anthropic-version", "x-fake-output-tokens"} {
		req.Header.Set(h, r.Header.Get(h))
	}
	req.Header.Set("x-api-key", p.keys[i])
	resp, err := p.client.Do(req)
	if err != nil {
		p.report(i, 502)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	p.report(i, resp.StatusCode)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// randomFailover is Higress ai-proxy's strategy: a random key per request;
// after 3 consecutive failures a key leaves the pool until a health check
// (every 5 s) brings it back.
func randomFailover(keys []string) (pick func() int, report func(int, int)) {
	var mu sync.Mutex
	fails := make([]int, len(keys))
	out := make([]time.Time, len(keys))
	pick = func() int {
		mu.Lock()
		defer mu.Unlock()
		var ok []int
		now := time.Now()
		for i := range keys {
			if !out[i].After(now) {
				ok = append(ok, i)
			}
		}
		if len(ok) == 0 {
			return -1
		}
		return ok[rand.IntN(len(ok))]
	}
	report = func(i, status int) {
		mu.Lock()
		defer mu.Unlock()
		if status == 429 || status >= 500 {
			if fails[i]++; fails[i] >= 3 {
				out[i], fails[i] = time.Now().Add(5*time.Second), 0
			}
			return
		}
		fails[i] = 0
	}
	return pick, report
}

// roundRobinCooldown is LiteLLM's default behaviour for a deployment list:
// keys in turn; a 429 cools the key down for 5 s.
func roundRobinCooldown(keys []string) (pick func() int, report func(int, int)) {
	var mu sync.Mutex
	next := 0
	cool := make([]time.Time, len(keys))
	pick = func() int {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		for range keys {
			i := next
			next = (next + 1) % len(keys)
			if !cool[i].After(now) {
				return i
			}
		}
		return -1
	}
	report = func(i, status int) {
		if status == 429 {
			mu.Lock()
			cool[i] = time.Now().Add(5 * time.Second)
			mu.Unlock()
		}
	}
	return pick, report
}
