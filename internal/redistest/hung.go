package redistest

import (
	"io"
	"net"
	"testing"
)

// Hung listens on a free loopback port, accepts every connection and reads
// it without ever replying: a Redis that hangs. It returns host:port and
// stops when the test ends.
func Hung(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	return lis.Addr().String()
}
