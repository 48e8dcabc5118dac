package bucket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

	// decision marks a decideScript call: args[0] is buf, a count of 1
	// then one decision, so the batcher can merge it with others (see
	// merge) and res is that decision's part of the reply.
	decision bool
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// batcher coalesces concurrent calls into pipelines. When nothing is in
// flight a caller sends its own call directly. Otherwise it queues the call
// for the workers: each takes the first queued call, adds whatever else is
// already queued (up to maxBatch) and sends them in one round trip. An idle
// engine therefore sends a call at once; under load, calls queue while the
// pipelines in flight wait on Redis and leave together. With a window > 0 a
// worker that sees other pipelines in flight waits up to window for more
// calls before sending. On a standalone Redis the decisions of a pipeline
// go as one decideScript call; lease calls, and every call on a cluster,
// go as one script call each.
type batcher struct {
	client   redis.UniversalClient
	in       chan *call
	maxBatch int
	window   time.Duration
	merge    atomic.Bool // standalone Redis: merge a batch's decisions into one call
	inflight atomic.Int32
	batches  atomic.Int64 // pipelines of more than one call, for tests
	batched  atomic.Int64 // calls sent in those pipelines
	merged   atomic.Int64 // decisions sent in merged calls

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	quit   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	// tick is closed and replaced every tickEvery while callers wait
	// (waiting > 0; the first of them wakes the ticker): they check their
	// deadline then, so a context with a deadline but no timer
	// (rls.Failover's) is still answered by it, give or take a tick, when
	// Redis or the client hangs where no deadline reaches (a new
	// connection's handshake, a pool wait). An idle engine does not tick.
	tick    atomic.Pointer[chan struct{}]
	waiting atomic.Int32
	wake    chan struct{} // buffered 1
	ticks   atomic.Int64  // for tests
}

// tickEvery is how late past its deadline a waiting caller may return.
const tickEvery = 5 * time.Millisecond

func newBatcher(c redis.UniversalClient, workers, maxBatch int, window time.Duration) *batcher {
	ctx, cancel := context.WithCancel(context.Background())
	_, standalone := c.(*redis.Client)
	b := &batcher{
		client:   c,
		in:       make(chan *call, workers*maxBatch),
		maxBatch: maxBatch,
		window:   window,
		ctx:      ctx,
		cancel:   cancel,
		quit:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	b.merge.Store(standalone)
	first := make(chan struct{})
	b.tick.Store(&first)
	b.wg.Add(workers + 1)
	for range workers {
		go b.work()
	}
	go b.ticker()
	return b
}

func (b *batcher) ticker() {
	defer b.wg.Done()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		if b.waiting.Load() == 0 {
			t.Stop()
			select {
			case <-b.quit:
				return
			case <-b.wake:
			}
			t.Reset(tickEvery)
			continue
		}
		select {
		case <-b.quit:
			return
		case <-t.C:
			next := make(chan struct{})
			close(*b.tick.Swap(&next))
			b.ticks.Add(1)
		}
	}
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
	if b.waiting.Add(1) == 1 {
		select {
		case b.wake <- struct{}{}:
		default: // the ticker is awake or already woken
		}
	}
	defer b.waiting.Add(-1)
	in := b.in // nil once c is queued: a send on nil never proceeds
	for {
		select {
		case in <- c:
			in = nil
			continue
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		case <-b.quit:
			return ErrClosed
		case <-*b.tick.Load():
		}
		if err := ctx.Err(); err != nil {
			return err // a deadline without a timer
		}
	}
}

func (b *batcher) work() {
	defer b.wg.Done()
	batch := make([]*call, 0, b.maxBatch)
	sc := &scratch{}
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
		b.exec(batch, sc)
		b.inflight.Add(-1)
		for i, c := range batch {
			c.done <- struct{}{}
			batch[i] = nil
		}
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

// scratch is a worker's reusable memory for exec.
type scratch struct {
	cmds  []*redis.Cmd
	sends []send
	keys  []string // the keys of the merged decisions
	args  []byte   // their packed arguments
}

// exec runs the live calls of batch and sets their res and err.
func (b *batcher) exec(batch []*call, sc *scratch) {
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
		return
	case 1:
		b.execOne(batch[0])
		return
	}
	batch = batch[:live]
	ctx, cancel := b.batchContext(batch)
	defer cancel()
	b.batches.Add(1)
	b.batched.Add(int64(live))

	// On a standalone Redis every decision goes into one script call (the
	// first send); other calls, and every call on a cluster, go alone.
	sends, cmds := sc.sends[:0], sc.cmds[:0]
	merged := 0
	if b.merge.Load() {
		sc.keys, sc.args = sc.keys[:0], appendInts(sc.args[:0], 0)
		for _, c := range batch {
			if c.decision {
				sc.keys = append(sc.keys, c.keys...)
				sc.args = append(sc.args, c.buf[8:]...)
				merged++
			}
		}
		if merged > 1 {
			b.merged.Add(int64(merged))
			binary.LittleEndian.PutUint64(sc.args, uint64(merged))
			sends = append(sends, send{script: decideScript, keys: sc.keys, args: []any{sc.args}})
		} else {
			merged = 0
		}
	}
	for _, c := range batch {
		if merged == 0 || !c.decision {
			sends = append(sends, send{script: c.script, keys: c.keys, args: c.args, c: c})
		}
	}
	for attempt := 0; ; attempt++ {
		pipe := b.client.Pipeline()
		cmds = cmds[:0]
		for _, s := range sends {
			switch {
			case s.done:
				cmds = append(cmds, nil)
			case attempt == 0:
				cmds = append(cmds, s.script.EvalSha(ctx, pipe, s.keys, s.args...))
			default:
				cmds = append(cmds, s.script.Eval(ctx, pipe, s.keys, s.args...))
			}
		}
		_, _ = pipe.Exec(ctx) // errors are per command
		retry := false
		for i := range sends {
			s := &sends[i]
			if s.done {
				continue
			}
			s.res, s.err = cmds[i].Slice()
			// A flushed script cache (restart, failover, SCRIPT FLUSH): send
			// the source once more with EVAL, which also caches it again.
			if attempt == 0 && isNoScript(s.err) {
				retry = true
				continue
			}
			s.done = true
		}
		if !retry {
			break
		}
	}
	for i := range sends {
		s := &sends[i]
		if s.c != nil {
			s.c.res, s.c.err = s.res, s.err
			if s.c.decision && s.err == nil {
				if _, err := decisionPart(s.res, 0, s.c); err != nil {
					s.c.err = err
				}
			}
			continue
		}
		err := s.err
		if isCrossSlot(err) {
			// A proxy in front of a sharded Redis (a plain client that is
			// not one Redis): decide one call per decision from now on.
			b.merge.Store(false)
			for _, c := range batch {
				if c.decision {
					b.execOne(c)
				}
			}
			continue
		}
		for pos, c := 0, 0; err == nil && c < len(batch); c++ {
			if batch[c].decision {
				pos, err = decisionPart(s.res, pos, batch[c])
			}
		}
		if err != nil {
			for _, c := range batch {
				if c.decision {
					c.err = err
				}
			}
		}
	}
	clear(sends)
	clear(cmds)
	clear(sc.keys)
	sc.sends, sc.cmds = sends[:0], cmds[:0]
}

// send is one script call of a pipeline: one call (c), or every decision
// of the batch merged (c nil).
type send struct {
	script *redis.Script
	keys   []string
	args   []any
	c      *call
	res    []any
	err    error
	done   bool
}

// decisionPart gives c its part of a decideScript reply, starting at pos,
// and returns where the next part starts: {0, allowed, now, 3 values per
// key} becomes c.res, {1, message} c.err. The error is a malformed reply.
func decisionPart(res []any, pos int, c *call) (int, error) {
	if pos+2 > len(res) {
		return 0, fmt.Errorf("unexpected decision reply of %d values", len(res))
	}
	switch status, _ := res[pos].(int64); status {
	case 0:
		n := 3 + 3*len(c.keys)
		if pos+n > len(res) {
			return 0, fmt.Errorf("unexpected decision reply of %d values", len(res))
		}
		c.res, c.err = res[pos+1:pos+n], nil
		return pos + n, nil
	case 1:
		msg, _ := res[pos+1].(string)
		c.res, c.err = nil, errors.New(msg)
		return pos + 2, nil
	}
	return 0, fmt.Errorf("unexpected decision status %v", res[pos])
}

// execOne runs one call without a pipeline; Script.Run falls back to EVAL
// on NOSCRIPT.
func (b *batcher) execOne(c *call) {
	ctx, cancel := b.batchContext([]*call{c})
	defer cancel()
	c.res, c.err = c.script.Run(ctx, b.client, c.keys, c.args...).Slice()
	if c.decision && c.err == nil {
		if _, err := decisionPart(c.res, 0, c); err != nil {
			c.err = err
		}
	}
}

// batchContext bounds a pipeline's waits in the client (a pool slot, a
// dial) by the earliest deadline among its callers; callers without a
// deadline do not bound it, and with none at all only close does. Its
// socket I/O go-redis bounds by the client's Read/WriteTimeout alone
// (ContextTimeoutEnabled off; see TestIdleCallBoundedByDeadline). Either
// way each waiting caller is answered by its own deadline through the tick.
func (b *batcher) batchContext(batch []*call) (context.Context, context.CancelFunc) {
	var earliest time.Time
	for _, c := range batch {
		if d, ok := c.ctx.Deadline(); ok && (earliest.IsZero() || d.Before(earliest)) {
			earliest = d
		}
	}
	if earliest.IsZero() {
		return b.ctx, func() {}
	}
	return context.WithDeadline(b.ctx, earliest)
}

func isCrossSlot(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "CROSSSLOT")
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}
