package httpapi

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationUnits are the units ParseDuration accepts, longest names first so
// that "ms" is not read as "m".
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	{"ms", time.Millisecond},
	{"s", time.Second},
	{"m", time.Minute},
	{"h", time.Hour},
	{"d", 24 * time.Hour},
	{"w", 7 * 24 * time.Hour},
}

// ParseDuration parses the durations the API and the CLI accept for
// retention and waits: one or more numbers, each with a unit ms, s, m, h,
// d (24h) or w (7d), as in "7d", "36h", "1d12h", "1.5h" or "500ms". It
// rejects negative, empty and overflowing durations; "0s" is zero.
func ParseDuration(s string) (time.Duration, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid duration %q: %s (examples: 7d, 12h, 90m, 30s, 500ms, 1d12h)", s, why)
	}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, bad("empty")
	}
	if rest[0] == '-' {
		return 0, bad("negative")
	}
	var total float64
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, bad(fmt.Sprintf("expected a number at %q", rest))
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, bad(fmt.Sprintf("%q is not a number", rest[:i]))
		}
		rest = rest[i:]
		unit := time.Duration(0)
		for _, u := range durationUnits {
			if strings.HasPrefix(rest, u.name) {
				unit, rest = u.d, rest[len(u.name):]
				break
			}
		}
		if unit == 0 {
			if rest == "" {
				return 0, bad("a unit is missing: use ms, s, m, h, d or w")
			}
			return 0, bad(fmt.Sprintf("unknown unit at %q: use ms, s, m, h, d or w", rest))
		}
		total += n * float64(unit)
		if total >= math.MaxInt64 {
			return 0, bad("too long")
		}
	}
	return time.Duration(total), nil
}

// FormatDuration writes d with the largest unit up to days that divides it
// exactly (7d, not 168h0m0s or 1w), the form ParseDuration reads back.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for i := len(durationUnits) - 2; i >= 0; i-- { // not weeks
		u := durationUnits[i]
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}
