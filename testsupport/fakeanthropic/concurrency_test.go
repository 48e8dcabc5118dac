package fakeanthropic

import (
	"io"
	"sync"
	"testing"
)

func TestConcurrentRequestsShareBuckets(t *testing.T) {
	clk := newClock() // frozen: no refill during the test
	s := New(twoAccounts(clk, Limits{RPM: 40, ITPM: 1e6, OTPM: 1e6}))
	ts := start(t, s)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	status := map[int]int{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{keyA1, keyA2}[w%2]
			body := helloBody
			if w%3 == 0 {
				body = streamBody
			}
			for range each {
				req := newReq(t, ts.URL, call{key: key, body: body})
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				status[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if status[200] != 40 || status[429] != workers*each-40 {
		t.Errorf("statuses = %v, want 40 OK", status)
	}
	c := s.Counters("a")
	if c.Requests != workers*each || c.Succeeded != 40 || c.RateLimited != workers*each-40 {
		t.Errorf("counters %+v", c)
	}
	var out int64
	for _, r := range s.Requests() {
		out += int64(r.OutputTokens)
	}
	if out != c.OutputTokens {
		t.Errorf("recorded output %d, counters %d", out, c.OutputTokens)
	}
}
