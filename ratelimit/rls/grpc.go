package rls

import "google.golang.org/grpc"

// StreamWorkers is how many long-lived goroutines serve RLS calls (see
// [GRPCServerOptions]). A call that arrives while every worker is busy gets
// a goroutine of its own, as without workers.
const StreamWorkers = 128

// GRPCServerOptions are the gRPC server options the RLS is served with. By
// default grpc-go starts a goroutine per call; a new goroutine starts with
// a small stack that is copied each time a decision's call depth outgrows
// it, 8–15 % of the server's CPU in profiles under make bench-rls. Workers
// keep their grown stacks (grpc-go renews a worker every 65,536 calls). The
// no-op server of cmd/rlsload uses the same options, so the benchmark's
// ceiling is measured on the same gRPC configuration.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.NumStreamWorkers(StreamWorkers)}
}
