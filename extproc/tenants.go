package extproc

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/claude-guardian/claude-guardian/config"
	"github.com/claude-guardian/claude-guardian/policy"
)

// Tenant is an authenticated caller.
type Tenant struct {
	Name string
	// Priority is the configured priority class: high, normal or low.
	Priority string
	// Concurrency caps the tenant's requests in flight to Claude (0: none).
	Concurrency int64
	// Policy is the tenant as the routing policy sees it (priority class,
	// whether its model may be rewritten), built once.
	Policy *policy.Tenant
}

// Tenants authenticates gateway keys. It keeps only SHA-256 digests of the
// configured keys. A presented key is hashed and compared with every digest
// in constant time, without stopping at a match, so the time taken tells
// nothing about which key, if any, matched.
type Tenants struct {
	digests [][sha256.Size]byte
	tenants []*Tenant
}

// NewTenants indexes the configured clients.
func NewTenants(clients []config.Client) *Tenants {
	t := &Tenants{}
	for _, c := range clients {
		t.digests = append(t.digests, sha256.Sum256([]byte(c.Key)))
		t.tenants = append(t.tenants, &Tenant{Name: c.Name, Priority: c.Priority, Concurrency: c.Concurrency, Policy: policy.NewTenant(c.Name, c.Priority, c.AllowModelRewrite)})
	}
	return t
}

// Authenticate returns the tenant whose gateway key is key, or nil.
func (t *Tenants) Authenticate(key string) *Tenant {
	d := sha256.Sum256([]byte(key))
	match := -1
	for i := range t.digests {
		if subtle.ConstantTimeCompare(t.digests[i][:], d[:]) == 1 {
			match = i
		}
	}
	if match < 0 || key == "" {
		return nil
	}
	return t.tenants[match]
}
