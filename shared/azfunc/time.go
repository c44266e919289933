package azfunc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrBadTime means a timestamp is not in a form [ParseTime] accepts.
var ErrBadTime = errors.New("azfunc: unreadable timestamp")

// minWall is .NET's DateTime.MinValue, which the host writes for a timer
// that never ran, with or without an offset.
const minWall = "0001-01-01T00:00:00"

// Time is a timestamp written by the Functions host. Its zero value means
// "never" or "unknown".
//
// Unmarshalling is lenient and never fails: it accepts what [ParseTime]
// accepts, and turns JSON null, "", and any value it cannot read into the
// zero time. Marshalling writes RFC 3339 with nanoseconds, in UTC.
type Time struct {
	time.Time
}

// UnmarshalJSON implements [json.Unmarshaler]. It never returns an error.
func (t *Time) UnmarshalJSON(b []byte) error {
	t.Time = time.Time{}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil // null, a number, or another kind: unknown
	}
	if p, err := ParseTime(s); err == nil {
		t.Time = p
	}
	return nil
}

// ParseTime parses a timestamp as the Functions host writes it: RFC 3339
// with 0 to 9 fractional digits (the host writes up to 7) and an offset of
// Z or ±hh:mm, or no offset at all, which means UTC. A wall-clock time of
// 0001-01-01T00:00:00, whatever its offset, and the empty string give the
// zero time. The result is in UTC.
//
// # Errors
//
// It returns an error wrapping [ErrBadTime] for anything else, including
// instants before year 1 or after year 9999 in UTC. The error does not
// quote s.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) < len(minWall) {
		return time.Time{}, fmt.Errorf("%w: too short", ErrBadTime)
	}
	wall, rest := s[:len(minWall)], s[len(minWall):]
	if !matches(wall, "dddd-dd-ddTdd:dd:dd") {
		return time.Time{}, fmt.Errorf("%w: not RFC 3339", ErrBadTime)
	}
	frac := ""
	if strings.HasPrefix(rest, ".") {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return time.Time{}, fmt.Errorf("%w: fractional seconds need 1 to 9 digits", ErrBadTime)
		}
		frac, rest = rest[:n], rest[n:]
	}
	switch {
	case rest == "":
		rest = "Z"
	case rest == "Z":
	case (rest[0] == '+' || rest[0] == '-') && matches(rest[1:], "dd:dd") && rest[1:3] < "24" && rest[4:6] < "60":
	default:
		return time.Time{}, fmt.Errorf("%w: offset must be Z, ±hh:mm or absent", ErrBadTime)
	}
	p, err := time.Parse(time.RFC3339Nano, wall+frac+rest)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: not RFC 3339", ErrBadTime)
	}
	if wall == minWall && strings.Trim(frac, ".0") == "" {
		return time.Time{}, nil
	}
	p = p.UTC()
	if y := p.Year(); y < 1 || y > 9999 {
		return time.Time{}, fmt.Errorf("%w: year out of range", ErrBadTime)
	}
	return p, nil
}

// matches reports whether s has the shape of pattern, in which 'd' stands
// for an ASCII digit and any other byte for itself.
func matches(s, pattern string) bool {
	if len(s) != len(pattern) {
		return false
	}
	for i := range len(s) {
		if p := pattern[i]; p == 'd' && (s[i] < '0' || s[i] > '9') || p != 'd' && s[i] != p {
			return false
		}
	}
	return true
}

// Seconds since the Unix epoch of 0001-01-01 and 9999-12-31T23:59:59 UTC.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

// UnixTime is a time given as seconds since the Unix epoch, as Key Vault
// writes NBF and EXP: a JSON number, a string holding a number, null, or
// absent. The zero value means "not set". Fractional seconds are kept to
// the nanosecond as far as a float64 allows. It marshals as a JSON number,
// or null when zero.
type UnixTime struct {
	time.Time
}

// UnmarshalJSON implements [json.Unmarshaler]. JSON null and "" give the
// zero time.
//
// # Errors
//
// It returns an error wrapping [ErrMalformed] for any other value that is
// not a number, or a number outside years 1 to 9999.
func (u *UnixTime) UnmarshalJSON(b []byte) error {
	u.Time = time.Time{}
	b = bytes.TrimSpace(b)
	s := string(b)
	switch {
	case s == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%w: Unix time: %w", ErrMalformed, err)
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil
		}
	}
	// A JSON number starts with '-' or a digit; this rejects NaN, Inf, hex
	// floats and the like that strconv would accept.
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) || !json.Valid([]byte(s)) {
		return fmt.Errorf("%w: Unix time is not a number", ErrMalformed)
	}
	var sec, nsec int64
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		sec = i
	} else {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < minUnix || f > maxUnix {
			return fmt.Errorf("%w: Unix time out of range", ErrMalformed)
		}
		whole := math.Floor(f)
		sec, nsec = int64(whole), int64(math.Round((f-whole)*1e9))
		if nsec >= 1e9 {
			sec, nsec = sec+1, nsec-1e9
		}
	}
	if sec < minUnix || sec > maxUnix {
		return fmt.Errorf("%w: Unix time out of range", ErrMalformed)
	}
	u.Time = time.Unix(sec, nsec).UTC()
	return nil
}

// MarshalJSON implements [json.Marshaler].
func (u UnixTime) MarshalJSON() ([]byte, error) {
	if u.IsZero() {
		return []byte("null"), nil
	}
	sec, nsec := u.Unix(), int64(u.Nanosecond())
	if nsec == 0 {
		return strconv.AppendInt(nil, sec, 10), nil
	}
	sign := ""
	if sec < 0 {
		// -1.25 is sec -2, nsec 750000000.
		sign, sec, nsec = "-", -(sec + 1), 1e9-nsec
	}
	s := fmt.Sprintf("%s%d.%09d", sign, sec, nsec)
	return []byte(strings.TrimRight(s, "0")), nil
}
