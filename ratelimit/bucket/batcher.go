package bucket

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// call is one script invocation waiting for a pipeline.
type call struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	buf    []byte // scratch for the packed ARGV
	res    []any
	err    error
	done   chan struct{} // buffered: the worker never blocks on it
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// batcher coalesces concurrent calls into pipelines. When nothing is in
// flight a caller sends its own call directly. Otherwise it queues the call
// for the workers: each takes the first queued call, adds whatever else is
// already queued (up to maxBatch) and sends them in one round trip. An idle
// engine therefore sends a call at once; under load, calls queue while the
// pipelines in flight wait on Redis and leave together. With a window > 0 a worker that sees other pipelines in
// flight waits up to window for more calls before sending.
type batcher struct {
	client   redis.UniversalClient
	in       chan *call
	maxBatch int
	window   time.Duration
	inflight atomic.Int32
	batches  atomic.Int64 // pipelines of more than one call, for tests
	batched  atomic.Int64 // calls sent in those pipelines

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	quit   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newBatcher(c redis.UniversalClient, workers, maxBatch int, window time.Duration) *batcher {
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher{
		client:   c,
		in:       make(chan *call, workers*maxBatch),
		maxBatch: maxBatch,
		window:   window,
		ctx:      ctx,
		cancel:   cancel,
		quit:     make(chan struct{}),
	}
	b.wg.Add(workers)
	for range workers {
		go b.work()
	}
	return b
}

func (b *batcher) close() {
	b.once.Do(func() {
		close(b.quit)
		b.cancel()
	})
	b.wg.Wait()
}

// run sends c and waits for its reply. On a nil error c may be reused; on an
// error it may still be written by a worker and must be dropped.
func (b *batcher) run(ctx context.Context, c *call) error {
	c.ctx = ctx
	// Idle fast path: with no pipeline in flight and nothing queued the
	// caller sends its own call, saving two goroutine hand-offs.
	if len(b.in) == 0 && b.inflight.CompareAndSwap(0, 1) {
		select {
		case <-b.quit:
			b.inflight.Add(-1)
			return ErrClosed
		default:
		}
		b.execOne(c)
		b.inflight.Add(-1)
		return c.err
	}
	select {
	case b.in <- c:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.quit:
		return ErrClosed
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.quit:
		return ErrClosed
	}
}

func (b *batcher) work() {
	defer b.wg.Done()
	batch := make([]*call, 0, b.maxBatch)
	cmds := make([]*redis.Cmd, 0, b.maxBatch)
	var timer *time.Timer
	for {
		select {
		case c := <-b.in:
			batch = append(batch[:0], c)
		case <-b.quit:
			return
		}
		batch = b.fill(batch)
		if b.window > 0 && len(batch) < b.maxBatch && b.inflight.Load() > 0 {
			if timer == nil {
				timer = time.NewTimer(b.window)
			} else {
				timer.Reset(b.window)
			}
		wait:
			for len(batch) < b.maxBatch {
				select {
				case c := <-b.in:
					batch = append(batch, c)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		b.inflight.Add(1)
		cmds = b.exec(batch, cmds[:0])
		b.inflight.Add(-1)
		for i, c := range batch {
			c.done <- struct{}{}
			batch[i] = nil
		}
		clear(cmds)
	}
}

// fill adds queued calls without waiting.
func (b *batcher) fill(batch []*call) []*call {
	for len(batch) < b.maxBatch {
		select {
		case c := <-b.in:
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}

// exec runs the live calls of batch and sets their res and err.
func (b *batcher) exec(batch []*call, cmds []*redis.Cmd) []*redis.Cmd {
	// Move calls whose caller gave up to the end (they are still signalled).
	live := 0
	for i, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			continue
		}
		batch[live], batch[i] = batch[i], batch[live]
		live++
	}
	switch live {
	case 0:
		return cmds
	case 1:
		b.execOne(batch[0])
		return cmds
	}
	ctx, cancel := b.batchContext(batch[:live])
	defer cancel()
	b.batches.Add(1)
	b.batched.Add(int64(live))
	pipe := b.client.Pipeline()
	for _, c := range batch[:live] {
		cmds = append(cmds, c.script.EvalSha(ctx, pipe, c.keys, c.args...))
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	retry := false
	for i, c := range batch[:live] {
		c.res, c.err = cmds[i].Slice()
		retry = retry || isNoScript(c.err)
	}
	if !retry {
		return cmds
	}
	// The script cache was flushed (restart, failover, SCRIPT FLUSH): send
	// the source once more with EVAL, which also caches it again.
	pipe = b.client.Pipeline()
	for i, c := range batch[:live] {
		if isNoScript(c.err) {
			cmds[i] = c.script.Eval(ctx, pipe, c.keys, c.args...)
		} else {
			cmds[i] = nil
		}
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range batch[:live] {
		if cmds[i] != nil {
			c.res, c.err = cmds[i].Slice()
		}
	}
	return cmds
}

// execOne runs one call without a pipeline; Script.Run falls back to EVAL
// on NOSCRIPT.
func (b *batcher) execOne(c *call) {
	ctx, cancel := b.batchContext([]*call{c})
	defer cancel()
	c.res, c.err = c.script.Run(ctx, b.client, c.keys, c.args...).Slice()
}

// batchContext bounds a pipeline by the latest caller deadline, if every
// caller has one, so a dead Redis does not hold a worker longer than its
// callers wait.
func (b *batcher) batchContext(batch []*call) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			return b.ctx, func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(b.ctx, latest)
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}
