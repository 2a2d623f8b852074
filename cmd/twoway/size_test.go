package main

import "testing"

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0":       0,
		"4096":    4096,
		"512B":    512,
		"1KiB":    1024,
		"1kib":    1024,
		"4MiB":    4 << 20,
		"2GiB":    2 << 30,
		"1TiB":    1 << 40,
		"1kB":     1000,
		"1KB":     1000,
		"1MB":     1000000,
		"3GB":     3000000000,
		"1.5KiB":  1536,
		"0.5MB":   500000,
		" 8 MiB ": 8 << 20,
	} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "-1KiB", "1.3B", "1.0001KiB", "ten", "1XB", "1e400", "NaN", "9999999999TiB", "0x10"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatByteSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 1: "1B", 1000: "1000B", 1024: "1KiB", 1536: "1536B", 1 << 20: "1MiB", 3 << 30: "3GiB",
	} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseByteSize(formatByteSize(n)); err != nil || back != n {
			t.Errorf("parseByteSize(formatByteSize(%d)) = %d, %v", n, back, err)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1000: "1000B", 1024: "1KiB", 41241: "40.3KiB", 6495193: "6.2MiB", 3 << 30: "3GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
