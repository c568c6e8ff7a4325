package config

import (
	"testing"
	"time"
)

// TestParseSize holds the one rule for sizes in both config files and on
// the command line (postie bench corpus --big). It accepts every form the
// three parsers it replaced accepted with a unit written once.
func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"+7", 7},
		{"512K", 512 << 10},
		{"500k", 500 << 10},
		{"25M", 25 << 20},
		{"50m", 50 << 20},
		{"50MB", 50 << 20},
		{"50mb", 50 << 20},
		{"50MiB", 50 << 20},
		{"50Mi", 50 << 20},
		{"1G", 1 << 30},
		{"1gib", 1 << 30},
		{"2T", 2 << 40},
		{"2TB", 2 << 40},
		{" 3 K ", 3 << 10},
		{"3 KiB", 3 << 10},
		{"5B", 5},
		{"5 B", 5},
		{"4194304T", 1 << 62},
		{"4611686018427387904", 1 << 62},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"", `"" is not a size such as 1048576, "512K" or "50M"`},
		{"lots", `"lots" is not a size such as 1048576, "512K" or "50M"`},
		{" 1.5G ", `"1.5G" is not a size such as 1048576, "512K" or "50M"`},
		{"1X", `"1X" is not a size such as 1048576, "512K" or "50M"`},
		{"-1K", `"-1K" is not a size such as 1048576, "512K" or "50M"`},
		{"M", `"M" is not a size such as 1048576, "512K" or "50M"`},
		{"5 M B", `"5 M B" is not a size such as 1048576, "512K" or "50M"`},
		{"1KK", `"1KK" is not a size such as 1048576, "512K" or "50M"`},
		{"4194305T", `"4194305T" is not a size such as 1048576, "512K" or "50M"`},
		{"4611686018427387905", `"4611686018427387905" is not a size such as 1048576, "512K" or "50M"`},
		{"99999999999999999999", `"99999999999999999999" is not a size such as 1048576, "512K" or "50M"`},
	} {
		got, err := ParseSize(tc.in)
		if err == nil || err.Error() != tc.err {
			t.Errorf("ParseSize(%q) = %d, %v; want error %s", tc.in, got, err, tc.err)
		}
	}
}

func TestSizeTOML(t *testing.T) {
	var s Size
	for _, tc := range []struct {
		in   any
		want Size
		err  string
	}{
		{int64(0), 0, ""},
		{int64(100000), 100000, ""},
		{"100k", 100 << 10, ""},
		{int64(-1), 0, "-1 is not a size: it must not be negative"},
		{true, 0, `expected a size such as 1048576, "512K" or "50M", found a boolean (true or false)`},
		{1.5, 0, `expected a size such as 1048576, "512K" or "50M", found a number with a fraction`},
		{"big", 0, `"big" is not a size such as 1048576, "512K" or "50M"`},
	} {
		s = 0
		err := s.UnmarshalTOML(tc.in)
		if tc.err == "" && (err != nil || s != tc.want) || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("UnmarshalTOML(%v) = %d, %v; want %d, %q", tc.in, s, err, tc.want, tc.err)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0}, {"0s", 0}, {"90s", 90 * time.Second}, {"10m", 10 * time.Minute},
		{"1h30m", 90 * time.Minute}, {"250ms", 250 * time.Millisecond}, {"1.5h", 90 * time.Minute},
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(tc.in)); err != nil || d.Std() != tc.want {
			t.Errorf("Duration %q = %v, %v; want %v", tc.in, d.Std(), err, tc.want)
		}
		if b, _ := d.MarshalText(); string(b) != tc.want.String() {
			t.Errorf("Duration %q written as %q, want %q", tc.in, b, tc.want.String())
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"600", `"600" is not a duration: it needs a unit, e.g. "30s" or "10m"`},
		{"1.5", `"1.5" is not a duration: it needs a unit, e.g. "30s" or "10m"`},
		{"-5s", `"-5s" is not a duration: it must not be negative`},
		{"soon", `"soon" is not a duration such as "30s", "10m" or "1h"`},
		{"1x", `"1x" is not a duration such as "30s", "10m" or "1h"`},
		{"", `"" is not a duration such as "30s", "10m" or "1h"`},
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(tc.in)); err == nil || err.Error() != tc.err {
			t.Errorf("Duration %q: %v, want error %s", tc.in, err, tc.err)
		}
	}
}
