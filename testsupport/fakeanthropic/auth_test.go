package fakeanthropic

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var reqIDRe = regexp.MustCompile(`^req_[0-9A-Za-z]{24}$`)

func TestRouting(t *testing.T) {
	clk := newClock()
	ts := start(t, New(twoAccounts(clk, Limits{RPM: 1000, ITPM: 1e6, OTPM: 1e6})))
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		wantMsg            string
	}{
		{"messages", "POST", "/v1/messages", 200, "", ""},
		{"messages with query", "POST", "/v1/messages?beta=true", 200, "", ""},
		{"count_tokens", "POST", "/v1/messages/count_tokens", 200, "", ""},
		{"count_tokens with query", "POST", "/v1/messages/count_tokens?beta=true", 200, "", ""},
		{"unknown path", "POST", "/v1/complete", 404, ErrNotFound, "Not Found"},
		{"models", "GET", "/v1/models", 404, ErrNotFound, "Not Found"},
		{"trailing slash", "POST", "/v1/messages/", 404, ErrNotFound, "Not Found"},
		{"GET messages", "GET", "/v1/messages", 405, ErrInvalidRequest, "Method Not Allowed"},
		{"PUT count_tokens", "PUT", "/v1/messages/count_tokens", 405, ErrInvalidRequest, "Method Not Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, call{method: tt.method, path: tt.path, key: keyA1, body: helloBody})
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if !reqIDRe.MatchString(r.header.Get("request-id")) {
				t.Errorf("request-id = %q", r.header.Get("request-id"))
			}
			if ct := r.header.Get("content-type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
			if tt.wantType == "" {
				return
			}
			e := r.errBody(t)
			if e.Type != "error" || e.Error.Type != tt.wantType || e.Error.Message != tt.wantMsg || e.RequestID != r.header.Get("request-id") {
				t.Errorf("body = %+v", e)
			}
			if tt.wantStatus == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q", r.header.Get("Allow"))
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name       string
		headers    map[string]string
		wantStatus int
		wantMsg    string
		wantCred   string
		wantFrom   string
	}{
		{"x-api-key", map[string]string{"x-api-key": keyA1}, 200, "", keyA1, "x-api-key"},
		{"bearer", map[string]string{"Authorization": "Bearer " + keyA2}, 200, "", keyA2, "authorization"},
		{"both, x-api-key wins", map[string]string{"x-api-key": keyA1, "Authorization": "Bearer nope"}, 200, "", keyA1, "x-api-key"},
		{"both, bad x-api-key loses", map[string]string{"x-api-key": "nope", "Authorization": "Bearer " + keyA1}, 401, "invalid x-api-key", "nope", "x-api-key"},
		{"missing", nil, 401, "x-api-key header is required", "", ""},
		{"unknown key", map[string]string{"x-api-key": "sk-ant-unknown"}, 401, "invalid x-api-key", "sk-ant-unknown", "x-api-key"},
		{"basic auth", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, 401, "invalid x-api-key", "", "authorization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(twoAccounts(clk, Limits{}))
			ts := start(t, s)
			r := do(t, ts, call{headers: tt.headers, body: helloBody})
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 401 {
				e := r.errBody(t)
				if e.Error.Type != ErrAuthentication || e.Error.Message != tt.wantMsg {
					t.Errorf("error = %+v", e.Error)
				}
				if h := r.header.Get("anthropic-ratelimit-requests-limit"); h != "" {
					t.Errorf("401 carries rate-limit headers: %q", h)
				}
				if h := r.header.Get("anthropic-organization-id"); h != "" {
					t.Errorf("401 carries organization id %q", h)
				}
			} else if got := r.header.Get("anthropic-organization-id"); got != orgA {
				t.Errorf("organization id = %q", got)
			}
			recs := s.Requests()
			if len(recs) != 1 || recs[0].Credential != tt.wantCred || recs[0].CredentialHeader != tt.wantFrom || recs[0].Status != tt.wantStatus {
				t.Errorf("recorded = %+v", recs)
			}
		})
	}
}

func TestRevokeKeyAndForbidden(t *testing.T) {
	clk := newClock()
	s := New(twoAccounts(clk, Limits{}))
	ts := start(t, s)
	s.RevokeKey(keyA1)
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 401 || r.errBody(t).Error.Message != "invalid x-api-key" {
		t.Fatalf("revoked: %d %s", r.status, r.body)
	}
	if r := do(t, ts, call{key: keyA2, body: helloBody}); r.status != 200 {
		t.Fatalf("sibling key: %d %s", r.status, r.body)
	}
	s.RestoreKey(keyA1)
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Fatalf("restored: %d %s", r.status, r.body)
	}

	if !s.SetForbidden("a", true) || s.SetForbidden("nobody", true) {
		t.Fatal("SetForbidden return value")
	}
	r := do(t, ts, call{key: keyA2, bearer: true, body: helloBody})
	if r.status != http.StatusForbidden {
		t.Fatalf("forbidden: %d %s", r.status, r.body)
	}
	if e := r.errBody(t); e.Error.Type != ErrPermission || e.Error.Message != "Your API key does not have permission to use the specified resource." {
		t.Errorf("error = %+v", e.Error)
	}
	if r.header.Get("anthropic-ratelimit-requests-limit") != "50" || r.header.Get("anthropic-organization-id") != orgA {
		t.Errorf("403 headers = %v", r.header)
	}
	if r := do(t, ts, call{key: keyB, body: helloBody}); r.status != 200 {
		t.Fatalf("other account: %d", r.status)
	}
	s.SetForbidden("a", false)
	if r := do(t, ts, call{key: keyA1, body: helloBody}); r.status != 200 {
		t.Fatalf("unforbidden: %d", r.status)
	}
}

func TestDefaultAccountAndConfigErrors(t *testing.T) {
	s := New(Config{})
	ts := start(t, s)
	r := do(t, ts, call{key: DefaultKey, body: helloBody})
	if r.status != 200 {
		t.Fatalf("default key: %d %s", r.status, r.body)
	}
	if got, want := r.header.Get("anthropic-organization-id"), s.OrgID("default"); got != want || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got) {
		t.Errorf("org id = %q, want %q (uuid)", got, want)
	}
	for _, h := range []string{"requests-limit:50", "input-tokens-limit:30000", "output-tokens-limit:8000", "tokens-limit:38000"} {
		name, val, _ := strings.Cut(h, ":")
		if got := r.header.Get("anthropic-ratelimit-" + name); got != val {
			t.Errorf("%s = %q, want %q", name, got, val)
		}
	}

	bad := []struct {
		name string
		cfg  Config
	}{
		{"unnamed", Config{Accounts: []Account{{Keys: []string{"k"}}}}},
		{"duplicate name", Config{Accounts: []Account{{Name: "x"}, {Name: "x"}}}},
		{"duplicate key", Config{Accounts: []Account{{Name: "x", Keys: []string{"k"}}, {Name: "y", Keys: []string{"k"}}}}},
		{"empty key", Config{Accounts: []Account{{Name: "x", Keys: []string{""}}}}},
		{"negative limit", Config{Accounts: []Account{{Name: "x", Limits: Limits{RPM: -1}}}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewServer(tt.cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
