package extproc

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/keypool"
)

// remaining reads an account's own buckets (sonnet class).
func remaining(t *testing.T, h *harness, account int) [3]int64 {
	t.Helper()
	r, err := h.pool.Remaining(context.Background(), h.pool.Accounts()[account], keypool.Sonnet)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func inFlight(h *harness) int64 {
	var n int64
	for _, a := range h.pool.Accounts() {
		n += a.InFlight()
	}
	return n
}

// TestAdmitReservesThenSettlesWithUsage: the body phase reserves the
// estimate and max_tokens; the response's usage settles it.
func TestAdmitReservesThenSettlesWithUsage(t *testing.T) {
	h := newHarness(t, harnessOpts{admit: true, accounts: defaultAccounts()[:1]})
	s := h.open(t, RoleFront)
	sendRequest(t, s, helloBody) // max_tokens 256
	during := remaining(t, h, 0)
	if during[0] != 49 || during[2] != 8000-256 || during[1] >= 30000 {
		t.Fatalf("reserved: %v", during)
	}
	if inFlight(h) != 1 || h.tickets.Len() != 1 {
		t.Fatalf("in flight %d, tickets %d", inFlight(h), h.tickets.Len())
	}
	resp := s.roundTrip(respHeaders(false, ":status", "200", "content-type", "application/json", HeaderAccount, "org-a"))
	if m := readMutation(resp.GetResponseHeaders().GetResponse().GetHeaderMutation()); m.set[HeaderQueueWait] == "" {
		t.Errorf("no %s header: %v", HeaderQueueWait, m.set)
	}
	s.roundTrip(respBody(jsonResponse, true)) // 25 in + 4 cache writes (ITPM 29), 15 out
	s.close()
	eventually(t, "settlement", func() bool { return inFlight(h) == 0 })
	if got, want := remaining(t, h, 0), [3]int64{49, 30000 - 29, 8000 - 15}; got != want {
		t.Errorf("after settling: %v, want %v (real usage charged, the rest refunded)", got, want)
	}
	if h.tickets.Len() != 0 {
		t.Error("ticket left behind")
	}
}

// TestAdmitAbandonedStreamSettles: the client goes away mid-stream; what
// Anthropic produced until then is charged, the rest refunded, nothing is
// left reserved.
func TestAdmitAbandonedStreamSettles(t *testing.T) {
	h := newHarness(t, harnessOpts{admit: true, accounts: defaultAccounts()[:1]})
	s := h.open(t, RoleFront)
	sendRequest(t, s, strings.Replace(helloBody, `"max_tokens"`, `"stream":true,"max_tokens"`, 1))
	s.roundTrip(respHeaders(false, ":status", "200", "content-type", "text/event-stream", HeaderAccount, "org-a"))
	s.roundTrip(respBody(sseResponse[:strings.Index(sseResponse, "event: content_block_delta")], false))
	s.cancel()
	eventually(t, "settlement after the reset", func() bool { return inFlight(h) == 0 })
	// message_start said 31 input, 1 output.
	if got, want := remaining(t, h, 0), [3]int64{49, 30000 - 31, 8000 - 1}; got != want {
		t.Errorf("after the reset: %v, want %v", got, want)
	}
}

// TestAdmitRefundsRefusedRequest: a request that ends in 529 (retries
// exhausted) consumed nothing at Anthropic: everything is refunded.
func TestAdmitRefundsRefusedRequest(t *testing.T) {
	h := newHarness(t, harnessOpts{admit: true, accounts: defaultAccounts()[:1]})
	s := h.open(t, RoleFront)
	sendRequest(t, s, helloBody)
	s.roundTrip(respHeaders(false, ":status", "529", "content-type", "application/json"))
	s.roundTrip(respBody(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, true))
	s.close()
	eventually(t, "settlement", func() bool { return inFlight(h) == 0 })
	if got := remaining(t, h, 0); got != [3]int64{50, 30000, 8000} {
		t.Errorf("after a refused request: %v, want full buckets", got)
	}
}

// TestAdmitQueuesThenAnswers429AtDeadline: with the pool's only account out
// of requests, a request waits in the queue; when a refund frees capacity
// the next waiter goes; one that waits past its deadline gets Anthropic's
// 429 with retry-after.
func TestAdmitQueuesThenAnswers429AtDeadline(t *testing.T) {
	one := []config.Account{{Name: "org-a", Limits: config.Limits{RPM: 1, ITPM: 30000, OTPM: 8000}, Keys: []config.Key{{ID: "a1", Key: poolKeyA1}}}}
	h := newHarness(t, harnessOpts{admit: true, accounts: one, maxWait: 300 * time.Millisecond})
	first := h.open(t, RoleFront)
	sendRequest(t, first, helloBody)

	// Second request: waits, then is refused at its deadline.
	second := h.open(t, RoleFront)
	second.roundTrip(postMessages("x-api-key", shopKey))
	start := time.Now()
	ir := second.roundTrip(reqBody(helloBody, true)).GetImmediateResponse()
	if ir == nil || ir.Status.GetCode() != 429 {
		t.Fatalf("want 429 at the deadline, got %v", ir)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("answered after %v, before the 300 ms deadline", waited)
	}
	e := decodeError(t, ir)
	hs := readMutation(ir.Headers)
	ra, _ := strconv.Atoi(hs.set["retry-after"])
	// RPM 1: the next request token comes in 60 s.
	if e.Error.Type != "rate_limit_error" || ra < 59 || ra > 60 || !strings.Contains(e.Error.Message, "retry after") {
		t.Errorf("429: %+v retry-after %q", e.Error, hs.set["retry-after"])
	}
	second.close()
	eventually(t, "the queue timeout counted", func() bool {
		return testutil.ToFloat64(h.metrics.requests.WithLabelValues("shop", "messages", OutcomeQueueTimeout)) == 1
	})

	// Third request waits; the first ends refused (refund): the third goes.
	third := h.open(t, RoleFront)
	third.roundTrip(postMessages("x-api-key", shopKey))
	done := make(chan bool, 1)
	go func() {
		resp := third.roundTrip(reqBody(helloBody, true))
		done <- resp.GetRequestBody() != nil
	}()
	time.Sleep(50 * time.Millisecond) // let it queue
	first.roundTrip(respHeaders(false, ":status", "503"))
	first.roundTrip(respBody("upstream reset", true))
	first.close()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the third request was refused")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the refund did not wake the queue")
	}
}

// TestUpstreamMovesReservationOn429: the front reserved on org-a; Anthropic
// answers the first attempt 429; the upstream processor moves the
// reservation to org-b and drops retry-after; the retry (a new upstream
// stream, same request id) uses org-b's key; settlement lands on org-b.
func TestUpstreamMovesReservationOn429(t *testing.T) {
	h := newHarness(t, harnessOpts{admit: true})
	front := h.open(t, RoleFront)
	front.roundTrip(postMessages("x-api-key", shopKey))
	front.roundTrip(reqBody(helloBody, true))
	ids := h.tickets.IDs() // the front's request id is random: find it
	if len(ids) != 1 {
		t.Fatalf("tickets %v", ids)
	}
	id := ids[0]
	t1, _, _ := h.tickets.Get(context.Background(), id)
	reqKV := []string{HeaderRequestID, id, HeaderTenant, "shop"}
	req1, resp1 := upstreamAttempt(t, h, reqKV, []string{":status", "429", "retry-after", "20"})
	if !resp1.removes("retry-after") {
		t.Errorf("retry-after must be dropped when another account can take the retry: %+v", resp1)
	}
	t2, _, _ := h.tickets.Get(context.Background(), id)
	if t2.Account == t1.Account {
		t.Fatalf("reservation stayed on %s", t1.Account)
	}
	req2, resp2 := upstreamAttempt(t, h, []string{HeaderRequestID, id, "x-envoy-attempt-count", "2"}, []string{":status", "200"})
	if got := testutil.ToFloat64(h.poolMetr.RetriesCounter(t2.Account)); got != 1 {
		t.Errorf("retries counted on %s: %v", t2.Account, got)
	}
	if req1.set["x-api-key"] == req2.set["x-api-key"] || resp2.set[HeaderAccount] != t2.Account {
		t.Errorf("attempt 1 key %q, attempt 2 key %q on %s", req1.set["x-api-key"], req2.set["x-api-key"], resp2.set[HeaderAccount])
	}
	front.roundTrip(respHeaders(false, ":status", "200", "content-type", "application/json", HeaderAccount, resp2.set[HeaderAccount]))
	front.roundTrip(respBody(jsonResponse, true))
	front.close()
	eventually(t, "settlement", func() bool { return inFlight(h) == 0 })
	for i, a := range h.pool.Accounts() {
		got := remaining(t, h, i)
		if a.Name == t1.Account && got != [3]int64{50, 30000, 8000} {
			t.Errorf("refused %s keeps a reservation: %v", a.Name, got)
		}
		if a.Name == t2.Account && got != [3]int64{49, 30000 - 29, 8000 - 15} {
			t.Errorf("serving %s: %v", a.Name, got)
		}
	}
}

// TestKeyRevokedMidRun: a key Anthropic answers 401 for is taken out of
// service; the next request reserves on the other account.
func TestKeyRevokedMidRun(t *testing.T) {
	h := newHarness(t, harnessOpts{admit: true})
	upstreamAttempt(t, h, nil, []string{":status", "401"})
	revoked := h.pool.Key("a1")
	if revoked.Disabled() == "" {
		t.Fatal("a1 still in service")
	}
	for range 3 {
		s := h.open(t, RoleFront)
		sendRequest(t, s, helloBody)
		s.cancel()
	}
	for _, id := range h.tickets.IDs() {
		if tk, _, _ := h.tickets.Get(context.Background(), id); tk.Account == "org-a" {
			t.Errorf("reserved on org-a whose only key is revoked")
		}
	}
}

// TestTenantConcurrencyQueues: a tenant capped at one request in flight
// waits in the queue for its first request to end, then goes.
func TestTenantConcurrencyQueues(t *testing.T) {
	h := newHarness(t, harnessOpts{admit: true, clients: []config.Client{{Name: "shop", Key: shopKey, Concurrency: 1}}})
	first := h.open(t, RoleFront)
	sendRequest(t, first, helloBody)
	second := h.open(t, RoleFront)
	second.roundTrip(postMessages("x-api-key", shopKey))
	done := make(chan bool, 1)
	go func() { done <- second.roundTrip(reqBody(helloBody, true)).GetRequestBody() != nil }()
	select {
	case <-done:
		t.Fatal("admitted while the tenant's only slot was in use")
	case <-time.After(100 * time.Millisecond):
	}
	first.roundTrip(respHeaders(false, ":status", "200", "content-type", "application/json", HeaderAccount, "org-a"))
	first.roundTrip(respBody(jsonResponse, true))
	first.close()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("refused")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the finished request did not free the tenant's slot")
	}
}

// failingTickets is a ticket store whose writes or reads can be made to
// fail, as a Redis blip would.
type failingTickets struct {
	keypool.Tickets
	put, get atomic.Bool
}

var errTicketStore = errors.New("ticket store unavailable")

func (f *failingTickets) Put(ctx context.Context, id string, t keypool.Ticket) error {
	if f.put.Load() {
		return errTicketStore
	}
	return f.Tickets.Put(ctx, id, t)
}

func (f *failingTickets) Get(ctx context.Context, id string) (keypool.Ticket, bool, error) {
	if f.get.Load() {
		return keypool.Ticket{}, false, errTicketStore
	}
	return f.Tickets.Get(ctx, id)
}

// TestMoveWithTicketStoreFailures: a retry's move meets a failing ticket
// store. When the new ticket cannot be written, the request stays on its
// account, charged there once; when the settlement cannot read the ticket
// after a move, no account is left counting the request in flight (the
// counts went to -1 and +1 for good before).
func TestMoveWithTicketStoreFailures(t *testing.T) {
	for _, failGet := range []bool{false, true} {
		t.Run(map[bool]string{false: "write fails during the move", true: "read fails at settlement"}[failGet], func(t *testing.T) {
			tickets := &failingTickets{}
			h := newHarness(t, harnessOpts{admit: true, tickets: func(k keypool.Tickets) keypool.Tickets {
				tickets.Tickets = k
				return tickets
			}})
			front := h.open(t, RoleFront)
			front.roundTrip(postMessages("x-api-key", shopKey))
			front.roundTrip(reqBody(helloBody, true))
			ids := h.tickets.IDs()
			if len(ids) != 1 {
				t.Fatalf("tickets %v", ids)
			}
			id := ids[0]
			t1, _, _ := h.tickets.Get(context.Background(), id)
			tickets.put.Store(!failGet)
			_, resp1 := upstreamAttempt(t, h, []string{HeaderRequestID, id}, []string{":status", "429", "retry-after", "20"})
			t2, _, _ := h.tickets.Get(context.Background(), id)
			if moved := t2.Account != t1.Account; moved != failGet || resp1.removes("retry-after") != failGet {
				t.Fatalf("moved %v (ticket on %s), retry-after dropped %v", moved, t2.Account, resp1.removes("retry-after"))
			}
			tickets.get.Store(failGet)
			_, resp2 := upstreamAttempt(t, h, []string{HeaderRequestID, id, "x-envoy-attempt-count", "2"}, []string{":status", "200"})
			front.roundTrip(respHeaders(false, ":status", "200", "content-type", "application/json", HeaderAccount, resp2.set[HeaderAccount]))
			front.roundTrip(respBody(jsonResponse, true))
			front.close()
			eventually(t, "settlement", func() bool { return inFlight(h) == 0 })
			for i, a := range h.pool.Accounts() {
				if n := a.InFlight(); n != 0 {
					t.Errorf("%s: in flight %d", a.Name, n)
				}
				if failGet {
					continue
				}
				want := [3]int64{50, 30000, 8000} // never used
				if a.Name == t1.Account {
					want = [3]int64{49, 30000 - 29, 8000 - 15} // served, charged once
				}
				if got := remaining(t, h, i); got != want {
					t.Errorf("%s: remaining %v, want %v", a.Name, got, want)
				}
			}
		})
	}
}
