package bucket

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestScaled(t *testing.T) {
	tests := []struct {
		n, perUS, den int64
		want          instant
	}{
		{1, 60_000_000, 7, instant{8_571_428, 4}},
		{7, 60_000_000, 7, instant{60_000_000, 0}},
		{1, 1_000_000, 1_000_000_000, instant{0, 1_000_000}},
		{math.MaxInt64, math.MaxInt64, 1, instant{maxInc, 0}},
		{1 << 40, 1 << 20, 3, instant{maxInc, 0}},
	}
	for _, tt := range tests {
		if got := scaled(tt.n, tt.perUS, tt.den); got != tt.want {
			t.Errorf("scaled(%d, %d, %d) = %v, want %v", tt.n, tt.perUS, tt.den, got, tt.want)
		}
	}
}

func TestTokensIn(t *testing.T) {
	tests := []struct {
		d        instant
		den, per int64
		want     int64
	}{
		{instant{60_000_000, 0}, 7, 60_000_000, 7},
		{instant{59_999_999, 6}, 7, 60_000_000, 6},
		{instant{1, 0}, 1_000_000_000, 1_000_000, 1000},
		{instant{-1, 3}, 7, 60, 0},
		{instant{math.MaxInt64, 0}, math.MaxInt64, 1, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := tokensIn(tt.d, tt.den, tt.per); got != tt.want {
			t.Errorf("tokensIn(%v, %d, %d) = %d, want %d", tt.d, tt.den, tt.per, got, tt.want)
		}
	}
}

func TestInstantArithmetic(t *testing.T) {
	const den = 7
	a := instant{10, 5}
	if got := a.add(instant{0, 3}, den); got != (instant{11, 1}) {
		t.Errorf("add carry: %v", got)
	}
	if got := a.sub(instant{0, 6}, den); got != (instant{9, 6}) {
		t.Errorf("sub borrow: %v", got)
	}
	if got := (instant{0, 1}).ceilDuration(); got != time.Microsecond {
		t.Errorf("ceil: %v", got)
	}
	if got := (instant{-1, 6}).ceilDuration(); got != 0 {
		t.Errorf("ceil of negative: %v", got)
	}
}

func TestMemorySweep(t *testing.T) {
	clk := newFakeClock(epoch)
	m := NewMemory(clk.Now)
	take := func(i int) {
		t.Helper()
		// One tag: every key lands in the same shard.
		if _, err := m.Take(t.Context(), []Request{{Key: fmt.Sprintf("{s}%d", i), Limit: Rate(10, time.Second), N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3000 {
		take(i)
	}
	clk.Advance(time.Hour) // every bucket is full again: dead state
	for i := range memSweepEvery {
		take(3000 + i)
	}
	sh := &m.shards[shardOf("s", memShards)]
	if n := len(sh.buckets); n > memSweepEvery {
		t.Fatalf("%d entries kept, want at most %d", n, memSweepEvery)
	}
}
