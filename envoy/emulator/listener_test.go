package emulator

import (
	"bufio"
	"net/http"
	"testing"
	"time"
)

func TestListener_ClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	ev := newEnv(t, headersOnly, continueAll, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	})
	req, err := http.NewRequest("GET", "http://"+ev.e.Addr()+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first streamed line %q %v: responses must be flushed chunk by chunk", line, err)
	}
	_ = resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled after the client went away")
	}
}
