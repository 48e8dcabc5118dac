package bucket

import (
	"time"

	"github.com/claude-guardian/claude-guardian/internal/testclock"
)

// fakeClock is a settable clock for deterministic tests.
type fakeClock = testclock.Clock

func newFakeClock(t time.Time) *fakeClock { return testclock.New(t) }
