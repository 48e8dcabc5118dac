package labels

import (
	"strings"
	"testing"
)

func TestBounded(t *testing.T) {
	b := Bounded{Max: 2}
	for _, tt := range []struct{ in, want string }{
		{"a", "a"}, {"b", "b"}, {"a", "a"}, {"c", Other}, {"b", "b"}, {strings.Repeat("x", 101), Other},
	} {
		if got := b.Value(tt.in); got != tt.want {
			t.Errorf("Value(%.10q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
