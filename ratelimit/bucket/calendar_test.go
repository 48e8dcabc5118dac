package bucket

import (
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zoneinfo
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func TestDayWindows(t *testing.T) {
	tests := []struct {
		name  string
		zone  string
		now   string // RFC 3339
		start string // expected start of today, RFC 3339
		hours float64
	}{
		{"utc", "UTC", "2026-06-10T15:04:05Z", "2026-06-10T00:00:00Z", 24},
		{"phoenix is UTC-7 all year", "America/Phoenix", "2026-03-08T06:59:59Z", "2026-03-07T00:00:00-07:00", 24},
		{"phoenix just after midnight", "America/Phoenix", "2026-03-08T07:00:00Z", "2026-03-08T00:00:00-07:00", 24},
		{"los angeles spring forward: 23 h day", "America/Los_Angeles", "2026-03-08T12:00:00-07:00", "2026-03-08T00:00:00-08:00", 23},
		{"los angeles fall back: 25 h day", "America/Los_Angeles", "2026-11-01T12:00:00-08:00", "2026-11-01T00:00:00-07:00", 25},
		{"los angeles fall back, second 01:30", "America/Los_Angeles", "2026-11-01T01:30:00-08:00", "2026-11-01T00:00:00-07:00", 25},
		{"havana: DST gap swallows midnight", "America/Havana", "2026-03-08T12:00:00-04:00", "2026-03-08T01:00:00-04:00", 23},
		{"havana: the day before the gap", "America/Havana", "2026-03-07T23:59:59-05:00", "2026-03-07T00:00:00-05:00", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			now, err := time.Parse(time.RFC3339, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			want, err := time.Parse(time.RFC3339, tt.start)
			if err != nil {
				t.Fatal(err)
			}
			w := dayWindows(now, loc)
			if got := time.UnixMicro(w[1]); !got.Equal(want) {
				t.Errorf("today starts %v, want %v", got.In(loc), want.In(loc))
			}
			if got := time.Duration(w[2]-w[1]) * time.Microsecond; got.Hours() != tt.hours {
				t.Errorf("today lasts %v, want %vh", got, tt.hours)
			}
			for i := range w {
				if lt := time.UnixMicro(w[i]).In(loc); i > 0 && w[i] <= w[i-1] {
					t.Errorf("window %d at %v not after the previous", i, lt)
				}
			}
			// The local clock reads 00:00 at each start, unless a gap skips it.
			if tt.zone != "America/Havana" {
				for i := range w {
					lt := time.UnixMicro(w[i]).In(loc)
					if lt.Hour() != 0 || lt.Minute() != 0 || lt.Second() != 0 {
						t.Errorf("window %d starts at local %v", i, lt)
					}
				}
			}
			start, end, err := pickWindow(w, now.UnixMicro())
			if err != nil || start != w[1] || end != w[2] {
				t.Errorf("pickWindow = %d, %d, %v; want today", start, end, err)
			}
		})
	}
}

func TestPickWindowSkew(t *testing.T) {
	w := [4]int64{0, 10, 20, 30}
	tests := []struct {
		now        int64
		start, end int64
		err        bool
	}{
		{-1, 0, 0, true},
		{0, 0, 10, false},
		{9, 0, 10, false},
		{10, 10, 20, false},
		{29, 20, 30, false},
		{30, 0, 0, true},
	}
	for _, tt := range tests {
		s, e, err := pickWindow(w, tt.now)
		if (err != nil) != tt.err || s != tt.start || e != tt.end {
			t.Errorf("pickWindow(%d) = %d, %d, %v", tt.now, s, e, err)
		}
	}
}
