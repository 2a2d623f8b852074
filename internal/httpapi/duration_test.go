package httpapi

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"7d":      7 * day,
		"1w":      7 * day,
		"36h":     36 * time.Hour,
		"90m":     90 * time.Minute,
		"30s":     30 * time.Second,
		"500ms":   500 * time.Millisecond,
		"1d12h":   36 * time.Hour,
		"1.5h":    90 * time.Minute,
		"0s":      0,
		" 2w ":    14 * day,
		"1m30s":   90 * time.Second,
		"100000d": 100000 * day,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "-1d", "7x", "7 d", "1d-2h", "1..5h", "1e3s", "999999999w", "forever"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour:      "7d",
		28 * 24 * time.Hour:     "28d",
		3 * 24 * time.Hour:      "3d",
		36 * time.Hour:          "36h",
		90 * time.Minute:        "90m",
		1500 * time.Millisecond: "1500ms",
		0:                       "0s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("%v does not read back: %v, %v", d, back, err)
		}
	}
}
