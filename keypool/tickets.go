package keypool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ticket is a reservation written down so that another processor (the
// upstream processor of each attempt, the front when the response ends) —
// possibly on another replica — can find it by request id.
type Ticket struct {
	Account  string  `json:"account"`
	Class    Class   `json:"class"`
	Model    string  `json:"model"`
	Requests int64   `json:"requests"`
	Input    int64   `json:"input"`
	Output   int64   `json:"output"`
	Leases   []Lease `json:"leases,omitempty"`
	// At (Unix µs) and OutBefore are when the reservation was taken and
	// what the output bucket held before it, for the settlement's cap
	// charge (see Account.capCharge); At 0 (older versions): no charge.
	At        int64 `json:"at,omitempty"`
	OutBefore int64 `json:"out_before,omitempty"`
}

// TicketOf writes r down for model.
func TicketOf(r *Reservation, model string) Ticket {
	t := Ticket{Account: r.Account.Name, Class: r.Class, Model: model, Requests: r.Requests, Input: r.Input, Output: r.Output, Leases: r.Leases}
	if !r.at.IsZero() {
		t.At, t.OutBefore = r.at.UnixMicro(), r.outBefore
	}
	return t
}

// Resume turns a ticket back into a reservation of this pool, or nil when
// it names an account the pool does not have.
func (p *Pool) Resume(t Ticket) *Reservation {
	for _, a := range p.accounts {
		if a.Name == t.Account {
			r := &Reservation{Account: a, Class: t.Class, Requests: t.Requests, Input: t.Input, Output: t.Output, Leases: t.Leases}
			if t.At != 0 {
				r.at, r.outBefore = time.UnixMicro(t.At), t.OutBefore
			}
			return r
		}
	}
	return nil
}

// Tickets stores tickets by request id. Entries expire after the TTL
// given to New*Tickets, so a replica that dies leaves nothing behind.
type Tickets interface {
	Put(ctx context.Context, id string, t Ticket) error
	Get(ctx context.Context, id string) (Ticket, bool, error)
	Delete(ctx context.Context, id string) error
}

// TicketTTL is how long a ticket outlives its last write: longer than any
// request (streams included) is expected to run.
const TicketTTL = 30 * time.Minute

// MemoryTickets keeps tickets in this process (one replica).
type MemoryTickets struct {
	mu  sync.Mutex
	m   map[string]memTicket
	ttl time.Duration
	now func() time.Time
	ops int
}

type memTicket struct {
	t       Ticket
	expires time.Time
}

// NewMemoryTickets returns an in-process store.
func NewMemoryTickets(ttl time.Duration, now func() time.Time) *MemoryTickets {
	if now == nil {
		now = time.Now
	}
	return &MemoryTickets{m: map[string]memTicket{}, ttl: ttl, now: now}
}

// Put implements [Tickets].
func (s *MemoryTickets) Put(_ context.Context, id string, t Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.m[id] = memTicket{t: t, expires: now.Add(s.ttl)}
	if s.ops++; s.ops%1024 == 0 { // sweep expired entries now and then
		for k, v := range s.m {
			if now.After(v.expires) {
				delete(s.m, k)
			}
		}
	}
	return nil
}

// Get implements [Tickets].
func (s *MemoryTickets) Get(_ context.Context, id string) (Ticket, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok || s.now().After(v.expires) {
		return Ticket{}, false, nil
	}
	return v.t, true, nil
}

// Delete implements [Tickets].
func (s *MemoryTickets) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// Len is the number of stored tickets (expired ones included until swept).
func (s *MemoryTickets) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// RedisTickets shares tickets between replicas through Redis.
type RedisTickets struct {
	c      redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisTickets returns a store on c with keys "<prefix>:ticket:<id>".
func NewRedisTickets(c redis.UniversalClient, prefix string, ttl time.Duration) *RedisTickets {
	return &RedisTickets{c: c, prefix: prefix, ttl: ttl}
}

func (s *RedisTickets) key(id string) string { return s.prefix + ":ticket:" + id }

// Put implements [Tickets].
func (s *RedisTickets) Put(ctx context.Context, id string, t Ticket) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("keypool: ticket: %w", err)
	}
	if err := s.c.Set(ctx, s.key(id), b, s.ttl).Err(); err != nil {
		return fmt.Errorf("keypool: put ticket: %w", err)
	}
	return nil
}

// Get implements [Tickets].
func (s *RedisTickets) Get(ctx context.Context, id string) (Ticket, bool, error) {
	b, err := s.c.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Ticket{}, false, nil
	}
	if err != nil {
		return Ticket{}, false, fmt.Errorf("keypool: get ticket: %w", err)
	}
	var t Ticket
	if err := json.Unmarshal(b, &t); err != nil {
		return Ticket{}, false, fmt.Errorf("keypool: ticket %s: %w", id, err)
	}
	return t, true, nil
}

// Delete implements [Tickets].
func (s *RedisTickets) Delete(ctx context.Context, id string) error {
	if err := s.c.Del(ctx, s.key(id)).Err(); err != nil {
		return fmt.Errorf("keypool: delete ticket: %w", err)
	}
	return nil
}

// IDs lists the stored request ids (for tests and debugging).
func (s *MemoryTickets) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.m))
	for id := range s.m {
		ids = append(ids, id)
	}
	return ids
}
