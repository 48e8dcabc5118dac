package cli

import (
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

func TestSetGC(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string // "" = GOGC unset
		want int    // GC percent after setGC
	}{
		{"default when unset", "", defaultGOGC},
		{"environment wins", "150", 150},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.env) // restores the variable afterwards
			if tt.env == "" {
				os.Unsetenv("GOGC")
			}
			prev := debug.SetGCPercent(150) // as the runtime reads GOGC=150 at start
			defer debug.SetGCPercent(prev)
			setGC(slog.New(slog.DiscardHandler))
			if got := debug.SetGCPercent(150); got != tt.want {
				t.Errorf("GC percent = %d, want %d", got, tt.want)
			}
		})
	}
}
