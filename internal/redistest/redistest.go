// Package redistest starts throw-away redis-server processes (standalone and
// Redis Cluster) on free loopback ports for tests.
//
// When redis-server (or redis-cli, for clusters) is not installed the calling
// test is skipped with a clear message, unless the environment variable
// GUARDIAN_REQUIRE_REDIS is set to a non-empty value, in which case it fails.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv names the environment variable that turns a missing redis-server
// into a test failure instead of a skip.
const RequireEnv = "GUARDIAN_REQUIRE_REDIS"

const startTimeout = 10 * time.Second

// Server is one standalone redis-server owned by a test.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	// Client is a client for Addr, closed when the test ends.
	Client *redis.Client

	t    testing.TB
	dir  string
	port int

	mu   sync.Mutex
	proc *process
}

// process is a running redis-server; done closes when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(bin string, args []string) (*process, error) {
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Start launches a standalone redis-server on a free loopback port. The
// server is killed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	dir := t.TempDir()
	s := &Server{t: t, dir: dir}
	var err error
	for range 5 { // a free port can be taken between probe and bind: retry
		s.port, err = freePort()
		if err != nil {
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if err = s.start(bin); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	s.Client = s.NewClient(t)
	return s
}

// NewClient returns a new client for the server, closed when t ends.
func (s *Server) NewClient(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.kill()
	s.proc = nil
}

// Restart starts a stopped server again on the same port, with an empty
// data set.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	bin := lookPath(s.t, "redis-server")
	var err error
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) { // the old socket may linger briefly
		if err = s.start(bin); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr, err)
}

func (s *Server) start(bin string, extra ...string) error {
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log"),
	}, extra...)
	p, err := startProcess(bin, args)
	if err != nil {
		return err
	}
	if err := waitPing(s.Addr, p.done); err != nil {
		p.kill()
		return fmt.Errorf("%w (log: %s)", err, s.logTail())
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log"))
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return strings.TrimSpace(string(b))
}

// Cluster is a Redis Cluster of several masters and no replicas.
type Cluster struct {
	// Addrs lists the masters' host:port.
	Addrs []string
	// Client is a cluster client for Addrs, closed when the test ends.
	Client *redis.ClusterClient
	// Nodes are the masters, e.g. to Stop one.
	Nodes []*Server
}

// StartCluster launches masters redis-server processes in cluster mode, joins
// them with `redis-cli --cluster create` and waits until every node reports
// cluster_state:ok. Everything is torn down when t ends.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	bin := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	dir := t.TempDir()
	c := &Cluster{}
	for range masters {
		s := &Server{t: t, dir: dir}
		var err error
		for range 5 {
			var bus int
			if s.port, err = freePort(); err != nil {
				continue
			}
			if bus, err = freePort(); err != nil {
				continue
			}
			s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
			err = s.start(bin,
				"--cluster-enabled", "yes",
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(s.port)+".conf"),
				"--cluster-node-timeout", "5000")
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("redistest: start cluster node: %v", err)
		}
		t.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}

	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := waitClusterOK(c.Nodes); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c.Client = c.NewClient(t)
	return c
}

// NewClient returns a new cluster client, closed when t ends.
func (c *Cluster) NewClient(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// FlushScripts runs SCRIPT FLUSH on every master.
func (c *Cluster) FlushScripts(ctx context.Context) error {
	return c.Client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.ScriptFlush(ctx).Err()
	})
}

func waitClusterOK(nodes []*Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr})
		var info string
		var err error
		for {
			info, err = c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				_ = c.Close()
				return fmt.Errorf("cluster not ok on %s: err=%v info=%q", n.Addr, err, info)
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = c.Close()
	}
	return nil
}

func waitPing(addr string, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited during start-up")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server on %s did not answer PING: %w", addr, err)
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("redistest: %s not found in PATH (install the redis-server package); set %s=1 to make this a failure", name, RequireEnv)
	if os.Getenv(RequireEnv) != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
