//go:build race

package policy

// raceEnabled: the race detector changes allocation counts (sync.Pool
// drops items at random), so allocation guards skip.
const raceEnabled = true
