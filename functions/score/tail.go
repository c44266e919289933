package score

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrTail is the cause of a refused path tail.
var ErrTail = errors.New("score: path tail refused")

// routeSegments is how many segments of the escaped path, the empty one
// before the first '/' included, come before the route's {*rest} tail:
// "", "api", "services", "{service}", "score".
const routeSegments = 5

// Tail returns the decoded {*rest} tail of escapedPath, the escaped path of
// a request for /api/services/{service}/score/{*rest}, or an error wrapping
// ErrTail if the tail could lead an upstream out of the scoringUri's path.
//
// Rather than resolve dot segments (and guess how each upstream, and each
// proxy before it, decodes and resolves again), Tail refuses every tail
// that could: one holding an encoded slash or backslash (%2F, %5C), a
// double encoding (%25), a backslash, invalid UTF-8 once decoded (overlong
// forms of '.' and '/'), a control character, a slash or backslash in a
// compatibility form (U+FF0F, U+FF3C: NFKC folds them into ASCII), or a
// segment that, decoded, NFKC-folded (U+FF0E, U+2025, U+FE19 become dots),
// cut at its first ';' (the path parameters that Tomcat and Jetty drop) and
// with trailing spaces trimmed (as IIS trims them), is made only of dots.
// So what reaches the upstream is the scoringUri's path followed by plain
// segments, whatever decoding the upstream does.
func Tail(escapedPath string) (string, error) {
	segs := strings.SplitN(escapedPath, "/", routeSegments+1)
	if len(segs) <= routeSegments {
		return "", nil
	}
	tail := segs[routeSegments]
	if strings.IndexByte(tail, '\\') >= 0 {
		return "", errors.Join(ErrTail, errors.New("a backslash"))
	}
	for i := strings.IndexByte(tail, '%'); i >= 0; i = next(tail, i) {
		if i+2 >= len(tail) {
			return "", errors.Join(ErrTail, errors.New("a bad escape"))
		}
		switch strings.ToLower(tail[i+1 : i+3]) {
		case "2f", "5c":
			return "", errors.Join(ErrTail, errors.New("an encoded slash or backslash"))
		case "25":
			return "", errors.Join(ErrTail, errors.New("a double encoding"))
		}
	}
	decoded, err := url.PathUnescape(tail)
	if err != nil {
		return "", errors.Join(ErrTail, errors.New("a bad escape"))
	}
	if !utf8.ValidString(decoded) {
		return "", errors.Join(ErrTail, errors.New("invalid UTF-8"))
	}
	if strings.ContainsFunc(decoded, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", errors.Join(ErrTail, errors.New("a control character"))
	}
	// What an upstream that folds compatibility forms reads: fullwidth
	// dots, slashes and backslashes become ASCII ones.
	folded := norm.NFKC.String(decoded)
	if strings.Count(folded, "/") != strings.Count(decoded, "/") || strings.ContainsRune(folded, '\\') {
		return "", errors.Join(ErrTail, errors.New("a slash or backslash in another form"))
	}
	for seg := range strings.SplitSeq(folded, "/") {
		if dotsOnly(seg) {
			return "", errors.Join(ErrTail, errors.New("a dot segment"))
		}
	}
	return decoded, nil
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '%')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// dotsOnly reports whether seg (NFKC-folded), cut at its first ';' and
// with trailing spaces trimmed (as Windows servers trim them), is one or
// more dots.
func dotsOnly(seg string) bool {
	seg, _, _ = strings.Cut(seg, ";")
	seg = strings.TrimRight(seg, " ")
	return seg != "" && strings.Trim(seg, ".") == ""
}
