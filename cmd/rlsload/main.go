// Command rlsload drives an RLS v3 server (envoy.service.ratelimit.v3) with
// concurrent ShouldRateLimit calls and prints decisions/s and latency
// percentiles. With -noop it is instead a no-op RLS v3 server that answers
// OK without work: the ceiling gRPC allows on the machine, served with the
// same gRPC server options as guardian's RLS.
//
//	rlsload -addr 127.0.0.1:8081 -concurrency 64 -duration 10s -tenants 1000 -hits 1
//	rlsload -noop 127.0.0.1:18089
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlspb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/claude-guardian/claude-guardian/ratelimit/rls"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rlsload:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, domain, label, noop string
	cpu                       string
	concurrency, conns        int
	tenants, hits             int
	duration, warmup          time.Duration
	axes                      int
	rate                      float64
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rlsload", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8081", "RLS address")
	fs.StringVar(&o.domain, "domain", "claude-guardian", "rate-limit domain")
	fs.StringVar(&o.label, "label", "", "name printed with the result")
	fs.StringVar(&o.noop, "noop", "", "serve a no-op RLS v3 on this address instead of driving one")
	fs.IntVar(&o.concurrency, "concurrency", 64, "calls in flight")
	fs.IntVar(&o.conns, "conns", 1, "gRPC connections")
	fs.IntVar(&o.tenants, "tenants", 1000, "distinct tenants (descriptor (tenant, axis))")
	fs.IntVar(&o.hits, "hits", 1, "hits_addend per descriptor")
	fs.IntVar(&o.axes, "axes", 1, "descriptors per call: 1 = requests; 2 = requests and input_tokens")
	fs.Float64Var(&o.rate, "rate", 0, "offered calls/s, open loop (0: as fast as -concurrency allows); a call due while every worker is busy counts from when it was due")
	fs.StringVar(&o.cpu, "cpu", "", "also print the CPU time per decision of this process and of these (name=pid,name=pid; Linux)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured run first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.noop != "" {
		return serveNoop(ctx, o.noop)
	}
	return drive(ctx, o, out)
}

type noop struct {
	rlspb.UnimplementedRateLimitServiceServer
}

func (noop) ShouldRateLimit(_ context.Context, r *rlspb.RateLimitRequest) (*rlspb.RateLimitResponse, error) {
	return &rlspb.RateLimitResponse{OverallCode: rlspb.RateLimitResponse_OK}, nil
}

func serveNoop(ctx context.Context, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := grpc.NewServer(rls.GRPCServerOptions()...) // guardian's RLS options
	rlspb.RegisterRateLimitServiceServer(g, noop{})
	go func() { <-ctx.Done(); g.Stop() }()
	return g.Serve(lis)
}

func requests(o options) []*rlspb.RateLimitRequest {
	reqs := make([]*rlspb.RateLimitRequest, o.tenants)
	for i := range reqs {
		t := "tenant-" + strconv.Itoa(i)
		r := &rlspb.RateLimitRequest{Domain: o.domain, HitsAddend: uint32(o.hits)}
		for _, axis := range []string{"requests", "input_tokens"}[:max(1, min(o.axes, 2))] {
			r.Descriptors = append(r.Descriptors, &rlv3.RateLimitDescriptor{Entries: []*rlv3.RateLimitDescriptor_Entry{
				{Key: "tenant", Value: t}, {Key: "axis", Value: axis}}})
		}
		reqs[i] = r
	}
	return reqs
}

func drive(ctx context.Context, o options, out io.Writer) error {
	var clients []rlspb.RateLimitServiceClient
	for range max(1, o.conns) {
		conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		clients = append(clients, rlspb.NewRateLimitServiceClient(conn))
	}
	procs, err := parseCPUProcs(o.cpu)
	if err != nil {
		return err
	}
	if _, err := cpuTimes(procs); err != nil {
		return err
	}
	reqs := requests(o)
	var (
		next atomic.Int64
		slot atomic.Int64
		errs atomic.Int64
		over atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
		wg   sync.WaitGroup
	)
	start := time.Now()
	measureAt, end := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	cpuDone := make(chan [2][]time.Duration, 1)
	if o.cpu != "" {
		go func() {
			var s [2][]time.Duration
			for i, at := range []time.Time{measureAt, end} {
				time.Sleep(time.Until(at))
				var err error
				if s[i], err = cpuTimes(procs); err != nil {
					fmt.Fprintln(os.Stderr, "rlsload:", err) // the process ended: no CPU line
				}
			}
			cpuDone <- s
		}()
	}
	for g := range o.concurrency {
		wg.Go(func() {
			c := clients[g%len(clients)]
			mine := make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				t0 := time.Now()
				if o.rate > 0 {
					// Open loop: call k is due at start + k/rate. A call that
					// is due while every worker is busy counts from when it was
					// due (no coordinated omission); one a worker sleeps for
					// counts from when the worker wakes, since Go's timers
					// may oversleep by up to a millisecond, which is ours,
					// not the server's.
					t0 = start.Add(time.Duration(float64(slot.Add(1)-1) / o.rate * float64(time.Second)))
					if wait := time.Until(t0); wait > 0 {
						time.Sleep(wait)
						t0 = time.Now()
					}
				}
				if t0.After(end) {
					break
				}
				resp, err := c.ShouldRateLimit(ctx, reqs[next.Add(1)%int64(len(reqs))])
				d := time.Since(t0)
				if !t0.Before(measureAt) {
					if err != nil {
						errs.Add(1)
						continue
					}
					if resp.OverallCode == rlspb.RateLimitResponse_OVER_LIMIT {
						over.Add(1)
					}
					mine = append(mine, d)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(measureAt)
	if len(lat) == 0 {
		return fmt.Errorf("no successful calls to %s (%d errors)", o.addr, errs.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	label := o.label
	if label == "" {
		label = o.addr
	}
	if o.rate > 0 {
		label += fmt.Sprintf(" at %.0f/s", o.rate)
	}
	fmt.Fprintf(out, "%-28s %10.0f decisions/s  p50 %8s  p99 %8s  p999 %8s  over %d  errors %d\n",
		label, float64(len(lat))/elapsed.Seconds(), round(pct(.5)), round(pct(.99)), round(pct(.999)), over.Load(), errs.Load())
	if o.cpu != "" {
		select {
		case s := <-cpuDone:
			if line := cpuLine(procs, s[0], s[1], len(lat)+int(errs.Load())); line != "" {
				fmt.Fprintf(out, "%-28s %s\n", "", line)
			}
		case <-ctx.Done(): // interrupted before the end: no CPU line
		}
	}
	return nil
}

func round(d time.Duration) string { return d.Round(time.Microsecond).String() }
