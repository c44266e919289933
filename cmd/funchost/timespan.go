package main

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// timeSpanRE matches the invariant forms of .NET's TimeSpan.Parse that
// host.json uses: "d", or "[d.]hh:mm[:ss[.fffffff]]", with an optional "-".
var timeSpanRE = regexp.MustCompile(`^\s*(-)?(?:(\d+)|(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?)\s*$`)

// parseTimeSpan parses a .NET TimeSpan string such as "00:05:00",
// "1.02:00:00" or "7" (days).
func parseTimeSpan(s string) (time.Duration, error) {
	m := timeSpanRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a TimeSpan such as 00:05:00", s)
	}
	num := func(x string) int64 {
		if x == "" {
			return 0
		}
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	var d time.Duration
	if m[2] != "" {
		d = time.Duration(num(m[2])) * 24 * time.Hour
	} else {
		h, mi, sec := num(m[4]), num(m[5]), num(m[6])
		if h > 23 || mi > 59 || sec > 59 {
			return 0, fmt.Errorf("%q is not a TimeSpan: hours, minutes or seconds out of range", s)
		}
		d = time.Duration(num(m[3]))*24*time.Hour + time.Duration(h)*time.Hour +
			time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second
		if f := m[7]; f != "" {
			for len(f) < 9 {
				f += "0"
			}
			d += time.Duration(num(f))
		}
	}
	if m[1] != "" {
		d = -d
	}
	return d, nil
}

// parseFunctionTimeout parses host.json functionTimeout: "" gives the local
// default of 30 minutes, "-1" gives 0 (unbounded), and anything else must
// be a TimeSpan of at least one second.
func parseFunctionTimeout(s string) (time.Duration, error) {
	switch s {
	case "":
		return 30 * time.Minute, nil
	case "-1":
		return 0, nil
	}
	d, err := parseTimeSpan(s)
	if err != nil {
		return 0, err
	}
	if d < time.Second {
		return 0, fmt.Errorf("%q: must be at least 00:00:01, or -1 for no limit", s)
	}
	return d, nil
}
