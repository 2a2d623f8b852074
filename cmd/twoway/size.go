package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag.Value for a number of bytes written with an optional
// unit: 512, 512B, 4KiB, 1MiB, 2GiB (powers of 1024) or 1kB, 1MB, 1GB
// (powers of 1000). Units ignore case; a fraction is allowed when the result
// is a whole number of bytes (1.5KiB).
type byteSize int64

var sizeUnits = []struct {
	suffix string
	factor int64
}{
	// Longest suffixes first, so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

func parseByteSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	lower := strings.ToLower(num)
	factor := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, factor = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.factor
			break
		}
	}
	bad := func(why string) error {
		return fmt.Errorf("invalid size %q: %s (examples: 4096, 64KiB, 1MiB, 1MB)", s, why)
	}
	if num == "" {
		return 0, bad("no number")
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 {
			return 0, bad("negative")
		}
		if n > math.MaxInt64/factor {
			return 0, bad("too large")
		}
		return n * factor, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, bad("not a number with an optional unit B, KiB, MiB, GiB, kB, MB or GB")
	}
	if f < 0 {
		return 0, bad("negative")
	}
	bytes := f * float64(factor)
	if bytes >= math.MaxInt64 {
		return 0, bad("too large")
	}
	if bytes != math.Trunc(bytes) {
		return 0, bad("not a whole number of bytes")
	}
	return int64(bytes), nil
}

// formatByteSize writes n with the largest binary unit that divides it, so
// flag defaults read as they were meant (1MiB, not 1048576).
func formatByteSize(n int64) string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.factor && n%u.factor == 0 {
			return strconv.FormatInt(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

func (b *byteSize) String() string { return formatByteSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// humanSize writes n for people: one decimal in the largest binary unit
// it reaches (6.2MiB), exact below 1 KiB.
func humanSize(n int64) string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.factor {
			if n%u.factor == 0 {
				return strconv.FormatInt(n/u.factor, 10) + u.suffix
			}
			return strconv.FormatFloat(float64(n)/float64(u.factor), 'f', 1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
