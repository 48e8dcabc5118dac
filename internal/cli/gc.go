package cli

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultGOGC is the garbage collector's target when the environment sets
// no GOGC. guardian's live heap is small (rules, buckets in memory mode,
// requests in flight), so Go's default of 100 collects very often under
// load: the GC used 7–11 % of the RLS's CPU in profiles under
// make bench-rls, 2–3 % at 400. The heap may grow to about 5× the live heap
// between collections; GOMEMLIMIT, if set, still bounds it.
const defaultGOGC = 400

// setGC applies defaultGOGC unless GOGC is set, and logs which applies.
func setGC(log *slog.Logger) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		log.Info("garbage collector", "GOGC", v, "from", "environment")
		return
	}
	debug.SetGCPercent(defaultGOGC)
	log.Info("garbage collector", "GOGC", defaultGOGC, "from", "default (set GOGC to change)")
}
