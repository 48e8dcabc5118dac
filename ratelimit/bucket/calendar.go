package bucket

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

var errClockSkew = errors.New("bucket: clock more than a day away from the day windows")

// dayWindows returns the starts, in µs since the Unix epoch, of yesterday,
// today, tomorrow and the day after in loc (nil means UTC), today being the
// local date of now. Consecutive starts bound each day: 23 h or 25 h on DST
// days. The Redis backend sends all four so that the script can pick the
// window that holds Redis TIME even when this host's clock is slightly off.
func dayWindows(now time.Time, loc *time.Location) [4]int64 {
	if loc == nil {
		loc = time.UTC
	}
	// Time-zone arithmetic costs about 1 µs; the windows change once a day.
	v, ok := dayCache.Load(loc)
	if !ok {
		if dayCacheLen.Load() >= dayCacheMax { // callers making a fresh *Location per call
			return computeDayWindows(now, loc)
		}
		var loaded bool
		if v, loaded = dayCache.LoadOrStore(loc, new(atomic.Pointer[[4]int64])); !loaded {
			dayCacheLen.Add(1)
		}
	}
	p := v.(*atomic.Pointer[[4]int64])
	us := now.UnixMicro()
	if w := p.Load(); w != nil && us >= w[1] && us < w[2] {
		return *w
	}
	w := computeDayWindows(now, loc)
	p.Store(&w)
	return w
}

// dayCache maps a *time.Location to the windows of the last day asked for;
// it holds at most dayCacheMax locations.
var (
	dayCache    sync.Map
	dayCacheLen atomic.Int32
)

const dayCacheMax = 64

func computeDayWindows(now time.Time, loc *time.Location) [4]int64 {
	y, m, d := now.In(loc).Date()
	var w [4]int64
	for i := range w {
		w[i] = dayStart(y, m, d+i-1, loc).UnixMicro()
	}
	return w
}

// dayStart returns the first instant of the local date (y, m, d) in loc; d
// may be out of range and is normalized as by time.Date. Where a DST gap
// swallows midnight the day begins at the transition.
func dayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	want := time.Date(y, m, d, 12, 0, 0, 0, time.UTC) // normalized date
	if ty, tm, td := t.Date(); ty != want.Year() || tm != want.Month() || td != want.Day() {
		_, end := t.ZoneBounds() // t fell on the previous day, before the gap
		return end
	}
	return t
}

// pickWindow returns the start and end (µs) of the day in w that holds now.
func pickWindow(w [4]int64, now int64) (start, end int64, err error) {
	for i := 2; i >= 0; i-- {
		if now >= w[i] {
			if now >= w[i+1] {
				break
			}
			return w[i], w[i+1], nil
		}
	}
	return 0, 0, errClockSkew
}
