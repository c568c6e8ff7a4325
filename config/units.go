package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Size is a number of octets, in postie's config file and in fetch's. It
// is written as a TOML integer or as a string:
//
//	<number> [K | M | G | T] [i] [B]
//
// where the number is decimal (an optional "+" sign, no fraction), spaces
// may surround the number and precede the suffix, and letters may be of
// either case. The units are powers of 1024: "50M", "50MB" and "50MiB" are
// all 52428800, "512k" is 524288, and a number alone or with only "B" is
// octets. Negative sizes are refused, and so are strings of more than 2^62
// octets (4 EiB).
type Size int64

// maxSize is the largest Size accepted.
const maxSize = 1 << 62

// ParseSize reads a size written as Size describes, as a command-line flag
// or a config string.
func ParseSize(s string) (Size, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.TrimSuffix(u, "B")
	u = strings.TrimSuffix(u, "I")
	mult := int64(1)
	if u != "" {
		switch u[len(u)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			u = u[:len(u)-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
	if err != nil || n < 0 || n > maxSize/mult {
		return 0, fmt.Errorf("%q is not a size such as 1048576, \"512K\" or \"50M\"", strings.TrimSpace(s))
	}
	return Size(n * mult), nil
}

// UnmarshalText parses a size such as "50M" or "1048576".
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalTOML accepts a size written as a TOML integer or string.
func (s *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("%d is not a size: it must not be negative", v)
		}
		*s = Size(v)
		return nil
	case string:
		return s.UnmarshalText([]byte(v))
	}
	return fmt.Errorf("expected %s, found %s", Size(0).describe(), tomlKind(fmt.Sprintf("%T", v)))
}

// MarshalText writes s with the largest unit that divides it.
func (s Size) MarshalText() ([]byte, error) {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return []byte(strconv.FormatInt(n/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}

// Duration is a time.Duration, in postie's config file and in fetch's,
// written as a Go duration string: "90s", "10m", "1h30m", "250ms". A
// number needs its unit ("0" alone is zero), and negative durations are
// refused.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// UnmarshalText parses a Go duration string such as "90s" or "10m".
func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("%q is not a duration: it needs a unit, e.g. \"30s\" or \"10m\"", s)
		}
		return fmt.Errorf("%q is not a duration such as \"30s\", \"10m\" or \"1h\"", s)
	}
	if v < 0 {
		return fmt.Errorf("%q is not a duration: it must not be negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d as a duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
